"""The SQLite schema, as sqlite-utils migrations applied at open, each in its own transaction."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("storesync")

# Every table is STRICT: a wrong type is an error, not a silently coerced value.
_INITIAL = """
CREATE TABLE skus (
    sku TEXT PRIMARY KEY,
    title TEXT,
    kind TEXT NOT NULL DEFAULT 'simple' CHECK (kind IN ('simple', 'bundle')),
    committed INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE bundle_components (
    bundle TEXT NOT NULL REFERENCES skus(sku),
    component TEXT NOT NULL REFERENCES skus(sku),
    qty INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (bundle, component)
) STRICT;

CREATE TABLE locations (
    name TEXT PRIMARY KEY,
    title TEXT
) STRICT;

-- The append-only stock ledger; `stock` is maintained from it in the same transaction.
CREATE TABLE movements (
    id INTEGER PRIMARY KEY,
    sku TEXT NOT NULL REFERENCES skus(sku),
    location TEXT NOT NULL,
    delta INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ref TEXT,
    at TEXT NOT NULL
) STRICT;
CREATE INDEX movements_sku ON movements(sku, location);

CREATE TABLE stock (
    sku TEXT NOT NULL REFERENCES skus(sku),
    location TEXT NOT NULL,
    on_hand INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (sku, location)
) STRICT;

CREATE TABLE channels (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'ok',
    state_reason TEXT,
    state_changed_at TEXT,
    last_poll_at TEXT,
    last_webhook_at TEXT,
    last_error TEXT
) STRICT;

CREATE TABLE listings (
    channel TEXT NOT NULL,
    sku TEXT NOT NULL,
    channel_ids TEXT,              -- JSON: the channel's own ids for this SKU
    status TEXT NOT NULL DEFAULT 'unknown',
    target_qty INTEGER,            -- the newest published number computed for this channel
    published_qty INTEGER,         -- the last number the channel accepted
    published_at TEXT,
    channel_qty INTEGER,           -- the last number seen on the channel
    seen_at TEXT,
    PRIMARY KEY (channel, sku)
) STRICT;

CREATE TABLE orders (
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    reserves INTEGER NOT NULL,     -- 1 while its open line remainders commit stock
    fulfilled_by_channel INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,      -- the channel's version of this order
    content_hash TEXT NOT NULL,
    created_at TEXT,
    customer TEXT NOT NULL DEFAULT '',
    currency TEXT NOT NULL DEFAULT '',
    total TEXT NOT NULL DEFAULT '',
    raw TEXT NOT NULL DEFAULT '{}',
    first_seen_at TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (channel, external_id)
) STRICT;
CREATE INDEX orders_created ON orders(channel, created_at);

CREATE TABLE order_lines (
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    line_id TEXT NOT NULL,
    channel_sku TEXT,
    sku TEXT,                      -- the master SKU; NULL when the channel SKU is unknown
    title TEXT NOT NULL DEFAULT '',
    qty INTEGER NOT NULL CHECK (qty >= 0),
    qty_shipped INTEGER NOT NULL DEFAULT 0,
    qty_cancelled INTEGER NOT NULL DEFAULT 0,
    qty_returned INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, external_id, line_id),
    FOREIGN KEY (channel, external_id) REFERENCES orders(channel, external_id),
    CHECK (qty_shipped + qty_cancelled <= qty)
) STRICT;
CREATE INDEX order_lines_sku ON order_lines(sku, channel);

-- What one unit of a line takes from stock: itself, or a bundle's components as sold.
CREATE TABLE line_components (
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    line_id TEXT NOT NULL,
    component TEXT NOT NULL,
    per_unit INTEGER NOT NULL CHECK (per_unit > 0),
    PRIMARY KEY (channel, external_id, line_id, component),
    FOREIGN KEY (channel, external_id, line_id)
        REFERENCES order_lines(channel, external_id, line_id)
) STRICT;
CREATE INDEX line_components_component ON line_components(component);

CREATE TABLE shipments (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    carrier TEXT NOT NULL DEFAULT '',
    tracking_number TEXT NOT NULL DEFAULT '',
    tracking_url TEXT NOT NULL DEFAULT '',
    location TEXT NOT NULL,
    source TEXT NOT NULL,          -- 'merchant' (pushed to the channel) or 'channel' (seen there)
    shipped_at TEXT NOT NULL,
    FOREIGN KEY (channel, external_id) REFERENCES orders(channel, external_id)
) STRICT;
CREATE INDEX shipments_order ON shipments(channel, external_id);

CREATE TABLE shipment_lines (
    shipment_id INTEGER NOT NULL REFERENCES shipments(id),
    line_id TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (shipment_id, line_id)
) STRICT;

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('stock', 'shipment')),
    key TEXT NOT NULL,
    value TEXT NOT NULL,           -- JSON
    expected INTEGER,              -- the channel's value we expect, for compare-and-set
    revision INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL CHECK (state IN ('pending', 'inflight', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
-- Coalescing: one pending row per (channel, kind, key); a newer value replaces an older one.
CREATE UNIQUE INDEX outbox_one_pending ON outbox(channel, kind, key) WHERE state = 'pending';
CREATE INDEX outbox_due ON outbox(channel, state, next_attempt_at);

CREATE TABLE inbox (
    channel TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    headers TEXT NOT NULL DEFAULT '{}',
    body BLOB NOT NULL,
    received_at TEXT NOT NULL,
    processed_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (channel, delivery_key)
) STRICT;
CREATE INDEX inbox_unprocessed ON inbox(processed_at, received_at);

CREATE TABLE cursors (
    channel TEXT NOT NULL,
    stream TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (channel, stream)
) STRICT;

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL DEFAULT 'info',
    channel TEXT,
    sku TEXT,
    ref TEXT,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX events_kind ON events(kind, at);
"""


@migrations()
def m001_initial(db: Database) -> None:
    """Create the first schema: catalog, ledger, orders, shipments, outbox, inbox, cursors."""
    for statement in _INITIAL.split(";\n"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m002_listings_by_sku(db: Database) -> None:
    """Index listings by SKU: republishing reads every channel's listing of a set of SKUs."""
    db.execute("CREATE INDEX listings_sku ON listings(sku)")


@migrations()
def m003_outbox_states(db: Database) -> None:
    """Outbox states 'superseded' and 'skipped', the time a value was queued; parked webhooks."""
    db.execute("ALTER TABLE outbox RENAME TO outbox_old")
    db.execute("DROP INDEX outbox_one_pending")
    db.execute("DROP INDEX outbox_due")
    db.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('stock', 'shipment')),
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            expected INTEGER,
            revision INTEGER NOT NULL DEFAULT 1,
            state TEXT NOT NULL CHECK (
                state IN ('pending', 'inflight', 'done', 'dead', 'superseded', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            queued_at TEXT NOT NULL        -- when the current value was queued, for latency
        ) STRICT
        """
    )
    db.execute("INSERT INTO outbox SELECT *, updated_at FROM outbox_old")
    db.execute("DROP TABLE outbox_old")
    db.execute(
        "CREATE UNIQUE INDEX outbox_one_pending ON outbox(channel, kind, key) "
        "WHERE state = 'pending'"
    )
    db.execute("CREATE INDEX outbox_due ON outbox(channel, state, next_attempt_at)")
    db.execute("ALTER TABLE inbox ADD COLUMN parked INTEGER NOT NULL DEFAULT 0")


@migrations()
def m004_outbox_oldest_index(db: Database) -> None:
    """Index the outbox by queue time: /status finds each channel's oldest waiting push with
    one index seek instead of reading every row (slow with 100k pushes queued)."""
    db.execute("CREATE INDEX outbox_queued ON outbox(channel, state, queued_at)")


@migrations()
def m005_reorder_alerts(db: Database) -> None:
    """Low-stock alerts: each time a SKU falls to its reorder point, and its webhook delivery."""
    db.execute(
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            sku TEXT NOT NULL,
            available INTEGER NOT NULL,        -- refreshed while the alert is open
            reorder_point INTEGER NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('config', 'velocity')),
            daily_velocity REAL NOT NULL,
            lead_time_days REAL NOT NULL,
            raised_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            cleared_at TEXT,                   -- set when stock rose above the point again
            -- 'off': no webhook configured when it was raised; 'dropped': cleared before delivery
            notify_state TEXT NOT NULL CHECK (
                notify_state IN ('off', 'pending', 'sent', 'failed', 'dropped')),
            notify_attempts INTEGER NOT NULL DEFAULT 0,
            next_notify_at TEXT,
            notified_at TEXT,
            notify_error TEXT
        ) STRICT
        """
    )
    # One open alert per SKU: entering again after a clear raises a new row.
    db.execute("CREATE UNIQUE INDEX alerts_one_open ON alerts(sku) WHERE cleared_at IS NULL")
    db.execute("CREATE INDEX alerts_notify_due ON alerts(notify_state, next_notify_at)")
    # Sales velocity reads orders by creation time across channels.
    db.execute("CREATE INDEX orders_created_at ON orders(created_at)")


@migrations()
def m006_shipment_files(db: Database) -> None:
    """Drop-folder files applied, by content digest, so each is applied exactly once."""
    db.execute(
        """
        CREATE TABLE shipment_files (
            sha256 TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            shipments INTEGER NOT NULL,
            applied_at TEXT NOT NULL
        ) STRICT
        """
    )


@migrations()
def m007_outbox_due_by_kind(db: Database) -> None:
    """Index due pushes by kind: the pusher claims stock apart from shipments, so a backlog of
    shipments never holds a sale's new number back."""
    db.execute("CREATE INDEX outbox_due_kind ON outbox(channel, kind, state, next_attempt_at)")
