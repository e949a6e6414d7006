"""The engine's units of work, one behaviour at a time, against a real store file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent.engine import (
    ChannelRules,
    Engine,
    InvalidShipment,
    InvalidStockChange,
    QtyRule,
    Rules,
    ShipmentRequest,
    UnknownLocation,
)
from agent.store import Store
from connectors.base import ChannelOrder, OrderLine, OrderStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_rules(**overrides) -> Rules:
    base = dict(
        locations=("main", "east"),
        channels={
            "shop": ChannelRules("shop", "shopify", ("main", "east")),
            "woo": ChannelRules("woo", "woocommerce", ("main",), stock_edits="import"),
            "amz": ChannelRules(
                "amz",
                "amazon",
                ("main", "east"),
                rule=QtyRule(buffer=2, allocation_pct=50, max_qty=10),
                sku_map={"AMZ-MUG": "MUG"},
            ),
        },
        bundles={"GIFT": {"MUG": 1, "TEA": 2}},
        sku_rules={"MUG": QtyRule(), "TEA": QtyRule(buffer=1)},
        sku_channel_rules={("TEA", "amz"): QtyRule(fixed_qty=0)},
    )
    base.update(overrides)
    return Rules(**base)


class Harness:
    """A store and an engine with a clock the test moves."""

    def __init__(self, path, rules: Rules) -> None:
        self.now = T0
        self.store = Store(path, clock=lambda: self.now)
        self.engine = Engine(rules)
        self.store.run(self.engine.sync_catalog)

    def __call__(self, method: str, *args, **kwargs):
        return self.store.run(lambda tx: getattr(self.engine, method)(tx, *args, **kwargs))

    def tx(self, fn):
        return self.store.run(fn)

    def published(self, channel: str, sku: str) -> int | None:
        return self.tx(lambda tx: tx.get_listing(channel, sku).target_qty)

    def pending(self, channel: str, sku: str) -> list[tuple[int, int | None]]:
        return [
            (json.loads(r.value), r.expected)
            for r in self.tx(lambda tx: tx.outbox_rows(state="pending", channel=channel))
            if r.kind == "stock" and r.key == sku
        ]

    def drain(self) -> None:
        def run(tx):
            for row in tx.outbox_rows(state="pending"):
                if row.kind == "stock":
                    self.engine.confirm_stock_push(tx, row.id)
                else:
                    tx.set_outbox_state(row.id, "done")

        self.tx(run)


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path / "store.db", make_rules())
    harness("set_count", "MUG", 20)
    harness("set_count", "TEA", 30)
    yield harness
    harness.store.close()


def order(
    channel="shop", oid="1001", lines=(("MUG", 2),), status=OrderStatus.OPEN, at=T0, **kw
) -> ChannelOrder:
    return ChannelOrder(
        channel=channel,
        external_id=oid,
        updated_at=at,
        created_at=kw.pop("created_at", at),
        status=status,
        lines=tuple(OrderLine(str(i), sku, qty, **kw) for i, (sku, qty) in enumerate(lines)),
    )


def test_published_numbers_follow_rules_by_precedence(h):
    # shop: plain; woo: main only; amz: 50% less buffer 2, capped at 10; TEA on amz fixed at 0
    assert h.published("shop", "MUG") == 20
    assert h.published("amz", "MUG") == 8  # 20 * 50% - 2
    assert h.published("shop", "TEA") == 29  # SKU buffer 1 beats the channel default
    assert h.published("amz", "TEA") == 0  # SKU-on-channel fixed quantity wins
    # A bundle is min(available(k) // qty_k); then the bundle's own rule applies, not TEA's buffer.
    assert h.published("shop", "GIFT") == 15  # min(20 // 1, 30 // 2)
    h("set_count", "MUG", 100)
    assert h.published("amz", "MUG") == 10  # max_qty


def test_sale_lowers_every_channel_and_queues_one_row_each(h):
    h.drain()
    h.now += timedelta(seconds=30)
    h("apply_order", order(lines=(("MUG", 3),), at=h.now))
    assert h.published("shop", "MUG") == 17
    assert h.published("woo", "MUG") == 17
    assert h.published("shop", "GIFT") == 15  # GIFT limited by TEA, so unchanged: no row
    assert h.pending("shop", "GIFT") == []
    # The selling channel already lowered itself: expected value for compare-and-set is 17.
    assert h.pending("shop", "MUG") == [(17, 17)]
    assert h.pending("woo", "MUG") == [(17, 20)]


def test_coalescing_keeps_one_pending_row_with_the_newest_value(h):
    h.drain()
    for i in range(5):
        h.now += timedelta(seconds=1)
        h("apply_order", order(oid=f"o{i}", lines=(("MUG", 1),), at=h.now))
    assert h.pending("woo", "MUG") == [(15, 20)]


def test_a_sale_does_not_inherit_a_paced_rows_wait_but_a_failing_row_keeps_its_backoff(h):
    h.drain()
    h("apply_order", order(oid="o1", lines=(("MUG", 1),), at=h.now))
    [paced] = h.tx(lambda tx: tx.claim_due("woo", "stock", 10))
    [failing] = h.tx(lambda tx: tx.claim_due("shop", "stock", 10))
    later = h.now + timedelta(hours=3)
    # The channel paces woo's listing (the attempt is given back); shop's push failed.
    h.tx(lambda tx: tx.retry_outbox(paced, "paced", later, count=False))
    h.tx(lambda tx: tx.retry_outbox(failing, "HTTP 503", later))
    h.now += timedelta(seconds=1)
    h("apply_order", order(oid="o2", lines=(("MUG", 1),), at=h.now))
    rows = h.tx(lambda tx: tx.claim_due("woo", "stock", 10) + tx.claim_due("shop", "stock", 10))
    due = {row.channel: json.loads(row.value) for row in rows}
    assert due == {"woo": 18}  # the sale goes now; the connector may pace it again


def test_order_versions_never_go_backwards(h):
    newer = order(status=OrderStatus.CANCELLED, at=T0 + timedelta(minutes=5))
    assert h("apply_order", newer).result == "created"
    assert h("apply_order", order()).result == "stale"
    assert h("apply_order", newer).result == "duplicate"
    assert h.published("shop", "MUG") == 20  # the cancellation stands


def test_sku_map_and_unknown_skus(h):
    outcome = h("apply_order", order(channel="amz", lines=(("AMZ-MUG", 1), ("NOPE", 4))))
    assert outcome.unknown_skus == ("NOPE",)
    assert h.published("shop", "MUG") == 19  # the mapped line still commits stock
    events = h.tx(
        lambda tx: tx.conn.execute(
            "SELECT kind, sku, message FROM events WHERE kind = 'unknown_sku'"
        ).fetchall()
    )
    assert len(events) == 1 and events[0][1] == "NOPE"
    lines = h.tx(lambda tx: tx.get_order("amz", "1001").lines)
    assert lines["1"].sku is None and lines["1"].channel_sku == "NOPE"


def test_bundle_sale_commits_its_components(h):
    h("apply_order", order(lines=(("GIFT", 2),)))
    committed = h.tx(lambda tx: tx.committed(["MUG", "TEA"]))
    assert committed == {"MUG": 2, "TEA": 4}
    assert h.published("shop", "GIFT") == 13  # min((20 - 2) // 1, (30 - 4) // 2)


def test_partial_shipments_then_the_rest(h):
    h("apply_order", order(lines=(("MUG", 3), ("TEA", 2))))
    first = h("apply_shipment", ShipmentRequest("shop", "1001", "UPS", "1Z1", lines={"MUG": 1}))
    assert first.lines == {"0": 1}
    stored = h.tx(lambda tx: tx.get_order("shop", "1001"))
    assert stored.status == "partially_shipped"
    assert h.tx(lambda tx: (tx.on_hand("MUG", "main"), tx.committed(["MUG"])["MUG"])) == (19, 2)
    assert h.published("shop", "MUG") == 17  # on hand and committed fell together
    # The same tracking number again is the same shipment, not a second one.
    again = h("apply_shipment", ShipmentRequest("shop", "1001", "UPS", "1Z1", lines={"MUG": 1}))
    assert (again.shipment_id, again.created) == (first.shipment_id, False)
    with pytest.raises(InvalidShipment, match="only 2 left"):
        h("apply_shipment", ShipmentRequest("shop", "1001", "UPS", "1Z2", lines={"MUG": 3}))
    rest = h("apply_shipment", ShipmentRequest("shop", "1001", "DHL", "JD2"))
    assert rest.lines == {"0": 2, "1": 2}
    assert h.tx(lambda tx: tx.get_order("shop", "1001").status) == "shipped"
    rows = h.tx(lambda tx: tx.outbox_rows(state="pending", channel="shop"))
    shipments = [json.loads(r.value) for r in rows if r.kind == "shipment"]
    assert [(s["carrier"], s["tracking_number"]) for s in shipments] == [
        ("UPS", "1Z1"),
        ("DHL", "JD2"),
    ]
    with pytest.raises(InvalidShipment, match="nothing left"):
        h("apply_shipment", ShipmentRequest("shop", "1001", "DHL", "JD3"))


def test_channel_reported_shipment_is_not_counted_twice(h):
    h("apply_order", order(lines=(("MUG", 2),)))
    h("apply_shipment", ShipmentRequest("shop", "1001", "UPS", "1Z1"))
    shipped = order(lines=(("MUG", 2),), shipped=2, at=T0 + timedelta(minutes=1))
    h("apply_order", shipped)
    assert h.tx(lambda tx: tx.on_hand("MUG", "main")) == 18


def test_refund_restocks_shipped_units_only_when_configured(tmp_path):
    for restocks, expected_on_hand in ((True, 20), (False, 18)):
        h = Harness(tmp_path / f"r{restocks}.db", make_rules(refund_restocks=restocks))
        h("set_count", "MUG", 20)
        h("apply_order", order(lines=(("MUG", 2),)))
        h("apply_shipment", ShipmentRequest("shop", "1001"))
        h(
            "apply_order",
            order(
                lines=(("MUG", 2),),
                shipped=2,
                returned=2,
                status=OrderStatus.REFUNDED,
                at=T0 + timedelta(days=3),
            ),
        )
        assert h.tx(lambda tx: tx.on_hand("MUG", "main")) == expected_on_hand
        h.store.close()


def test_unpaid_orders_reserve_only_when_configured(tmp_path):
    for reserves, expected in ((True, 18), (False, 20)):
        h = Harness(tmp_path / f"u{reserves}.db", make_rules(unpaid_reserves=reserves))
        h("set_count", "MUG", 20)
        h("apply_order", order(lines=(("MUG", 2),), status=OrderStatus.PENDING))
        assert h.published("shop", "MUG") == expected
        h.store.close()


def test_channel_fulfilled_orders_never_touch_merchant_stock(h):
    fba = ChannelOrder(
        "amz",
        "A1",
        T0,
        OrderStatus.SHIPPED,
        (OrderLine("1", "AMZ-MUG", 5),),
        fulfilled_by_channel=True,
    )
    assert h("apply_order", fba).result == "created"
    assert h.tx(lambda tx: (tx.on_hand("MUG", "main"), tx.committed(["MUG"])["MUG"])) == (20, 0)
    with pytest.raises(InvalidShipment, match="fulfilled by the channel"):
        h("apply_shipment", ShipmentRequest("amz", "A1"))


def test_drift_on_an_import_channel_becomes_a_movement(h):
    h.drain()  # woo accepted 20 for MUG
    h.now += timedelta(minutes=1)
    h("apply_order", order(channel="woo", lines=(("MUG", 1),), created_at=h.now, at=h.now))
    h.drain()
    # Someone received 5 units in the WooCommerce admin: it shows 24, we expected 19.
    outcome = h("observe_level", "woo", "MUG", 24)
    assert (outcome.expected, outcome.drift, outcome.action) == (19, 5, "imported")
    assert h.tx(lambda tx: tx.on_hand("MUG", "main")) == 25
    assert h.published("shop", "MUG") == 24
    # Seeing the same level again is not new drift.
    assert h("observe_level", "woo", "MUG", 24).action == "none"


def test_drift_on_an_overwrite_channel_is_pushed_back(h):
    h.drain()
    outcome = h("observe_level", "shop", "MUG", 7)
    assert (outcome.drift, outcome.action) == (-13, "repush")
    assert h.tx(lambda tx: tx.on_hand("MUG", "main")) == 20  # stock untouched
    assert h.pending("shop", "MUG") == [(20, 7)]  # compare-and-set against what it shows


def test_sales_since_the_last_push_are_not_drift(h):
    h.drain()
    h.now += timedelta(minutes=1)
    h("apply_order", order(lines=(("MUG", 4),), created_at=h.now, at=h.now))
    assert h("observe_level", "shop", "MUG", 16).action == "none"


def test_stock_changes_refuse_bad_input_and_change_nothing(h):
    with pytest.raises(UnknownLocation, match="known: main, east"):
        h("set_count", "MUG", 5, location="west")
    with pytest.raises(InvalidStockChange, match="negative"):
        h("set_count", "MUG", -1)
    with pytest.raises(InvalidStockChange, match="bundle"):
        h("apply_movement", "GIFT", 3)
    assert h.tx(lambda tx: tx.on_hand("MUG", "main")) == 20


def test_set_count_creates_a_new_sku_and_publishes_it(h):
    h("set_count", "NEW-1", 7, location="east")
    assert h.tx(lambda tx: tx.sku_kind("NEW-1")) == "simple"
    assert h.published("shop", "NEW-1") == 7
    assert h.published("woo", "NEW-1") == 0  # woo sells from main only


def test_a_push_lost_to_a_stale_compare_and_set_is_queued_again(h):
    """Shopify took 20; a sale elsewhere queued 18 expecting 20, but our CAS saw a stale value
    and the row was superseded. Re-reading finds the channel at 20, no drift: 18 must still go."""
    h.drain()
    h.now += timedelta(minutes=1)
    h("apply_order", order(channel="woo", lines=(("MUG", 2),), created_at=h.now, at=h.now))
    (row,) = [r for r in h.tx(lambda tx: tx.outbox_rows(state="pending", channel="shop"))
              if r.key == "MUG"]
    h.tx(lambda tx: tx.set_outbox_state(row.id, "superseded", error="changeFromQuantity stale"))
    outcome = h("observe_level", "shop", "MUG", 20)
    assert (outcome.drift, outcome.action) == (0, "requeued")
    assert h.pending("shop", "MUG") == [(18, 20)]
    # With the push on its way, seeing the old number again queues nothing more.
    assert h("observe_level", "shop", "MUG", 20).action == "none"
    assert h.pending("shop", "MUG") == [(18, 20)]


def test_a_value_queued_behind_one_in_flight_expects_what_that_one_set(h):
    """Shopify shows 20. A sale queues 18 (expect 20) and it goes out; another sale queues 16
    behind it, also expecting 20. Once 18 is accepted, 16 must compare against 18."""
    h.drain()
    h.now += timedelta(minutes=1)
    h("apply_order", order(channel="woo", oid="W1", lines=(("MUG", 2),), created_at=h.now,
                           at=h.now))
    (first,) = h.tx(lambda tx: tx.claim_due("shop", "stock", 10))
    h("apply_order", order(channel="woo", oid="W2", lines=(("MUG", 2),), created_at=h.now,
                           at=h.now))
    assert h.pending("shop", "MUG") == [(16, 20)]
    h("confirm_stock_push", first.id)
    assert h.pending("shop", "MUG") == [(16, 18)]
