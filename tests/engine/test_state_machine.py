"""The engine under random histories: sales, redeliveries, shipments, refunds, drift, restarts.

The machine keeps its own record of every order version a channel produced and which were
delivered, then checks the store after every step, with its own SQL and its own stock formula.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
)

from agent.engine import ChannelRules, Engine, EngineError, QtyRule, Rules, ShipmentRequest
from agent.engine.orders import content_hash
from agent.store import Store
from connectors.base import ChannelOrder, OrderLine, OrderStatus

LOCATIONS = ("main", "east")
SIMPLE = ("A", "B", "C")
BUNDLE = {"BOX": {"A": 1, "B": 2}}
SOLD = (*SIMPLE, "BOX", "ZZZ")  # ZZZ is unknown to the catalog
RULES = Rules(
    locations=LOCATIONS,
    channels={
        "shop": ChannelRules("shop", "shopify", LOCATIONS),
        "woo": ChannelRules(
            "woo", "woocommerce", ("main",), stock_edits="import", rule=QtyRule(buffer=1)
        ),
        "amz": ChannelRules(
            "amz",
            "amazon",
            LOCATIONS,
            rule=QtyRule(allocation_pct=50, max_qty=5),
            sku_map={"amz-a": "A"},
        ),
    },
    bundles=BUNDLE,
    sku_rules={"A": QtyRule(), "B": QtyRule(), "C": QtyRule(buffer=2)},
    sku_channel_rules={("C", "amz"): QtyRule(fixed_qty=0)},
    unpaid_reserves=True,
    refund_restocks=True,
)
CHANNEL_SKU = {"amz": {"A": "amz-a"}}
STEP = timedelta(seconds=1)

# Where a fast disk is at hand, keep the fsync-per-commit test files on it.
TMP_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None


class Clock:
    """A clock the machine moves forward one second per step."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class EngineMachine(RuleBasedStateMachine):
    """Random histories against one store file."""

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="storesync-sm-", dir=TMP_ROOT)
        self.path = os.path.join(self.dir, "store.db")
        self.clock = Clock()
        self.store = Store(self.path, clock=self.clock)
        self.engine = Engine(RULES)
        self.store.run(self.engine.sync_catalog)
        self.versions: dict[tuple[str, str], list[ChannelOrder]] = {}
        self.delivered: dict[tuple[str, str], set[int]] = {}
        self.next_id = 1

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def tick(self) -> datetime:
        self.clock.now += STEP
        return self.clock.now

    def deliver(self, key: tuple[str, str], index: int) -> None:
        version = self.versions[key][index]
        self.store.run(lambda tx: self.engine.apply_order(tx, version))
        self.delivered.setdefault(key, set()).add(index)

    def evolve(self, key: tuple[str, str], **changes: object) -> ChannelOrder:
        latest = self.versions[key][-1]
        version = replace(latest, updated_at=self.tick(), **changes)
        self.versions[key].append(version)
        return version

    # -- rules: channels ----------------------------------------------------------------------

    @rule(
        target=orders,
        channel=st.sampled_from(sorted(RULES.channels)),
        lines=st.lists(st.tuples(st.sampled_from(SOLD), st.integers(1, 3)), min_size=1, max_size=3),
        paid=st.booleans(),
        deliver=st.booleans(),
    )
    def place_order(self, channel, lines, paid, deliver):
        key = (channel, f"o{self.next_id}")
        self.next_id += 1
        now = self.tick()
        order = ChannelOrder(
            channel=channel,
            external_id=key[1],
            updated_at=now,
            created_at=now,
            status=OrderStatus.OPEN if paid else OrderStatus.PENDING,
            lines=tuple(
                OrderLine(str(i), CHANNEL_SKU.get(channel, {}).get(sku, sku), qty)
                for i, (sku, qty) in enumerate(lines)
            ),
        )
        self.versions[key] = [order]
        if deliver:
            self.deliver(key, 0)
        return key

    @rule(key=orders, deliver=st.booleans())
    def channel_marks_paid(self, key, deliver):
        if self.versions[key][-1].status == OrderStatus.PENDING:
            self.evolve(key, status=OrderStatus.OPEN)
            if deliver:
                self.deliver(key, len(self.versions[key]) - 1)

    @rule(key=orders, deliver=st.booleans())
    def channel_cancels(self, key, deliver):
        self.evolve(key, status=OrderStatus.CANCELLED)
        if deliver:
            self.deliver(key, len(self.versions[key]) - 1)

    @rule(key=orders, data=st.data(), deliver=st.booleans())
    def channel_edits_or_ships(self, key, data, deliver):
        """The channel removes unshipped units or ships some itself."""
        latest = self.versions[key][-1]
        lines = []
        for line in latest.lines:
            room = line.quantity - line.shipped - line.cancelled
            cancel = data.draw(st.integers(0, max(room, 0)))
            ship = data.draw(st.integers(0, max(room - cancel, 0)))
            lines.append(
                replace(line, cancelled=line.cancelled + cancel, shipped=line.shipped + ship)
            )
        self.evolve(key, lines=tuple(lines))
        if deliver:
            self.deliver(key, len(self.versions[key]) - 1)

    @rule(key=orders, restock=st.booleans(), deliver=st.booleans())
    def channel_refunds(self, key, restock, deliver):
        latest = self.versions[key][-1]
        lines = tuple(replace(ln, returned=ln.shipped if restock else 0) for ln in latest.lines)
        self.evolve(key, status=OrderStatus.REFUNDED, lines=lines)
        if deliver:
            self.deliver(key, len(self.versions[key]) - 1)

    @rule(key=orders, data=st.data())
    def redeliver_any_version(self, key, data):
        """A late, duplicated or out-of-order webhook, or a poll re-reading an old page."""
        index = data.draw(st.integers(0, len(self.versions[key]) - 1))
        self.tick()
        self.deliver(key, index)

    @rule(key=orders)
    def reconcile_latest(self, key):
        self.tick()
        self.deliver(key, len(self.versions[key]) - 1)

    # -- rules: merchant ----------------------------------------------------------------------

    @rule(key=orders, partial=st.booleans(), tracking=st.sampled_from(["", "T1", "T2"]))
    def merchant_ships(self, key, partial, tracking):
        if key not in self.delivered:
            return
        self.tick()
        stored = self.store.run(lambda tx: tx.get_order(*key))
        open_lines = {ln.line_id: ln.remaining for ln in stored.lines.values() if ln.remaining}
        asked = None
        if partial and open_lines:
            line_id = sorted(open_lines)[0]
            asked = {line_id: 1}
        request = ShipmentRequest(key[0], key[1], "UPS", tracking, lines=asked)
        try:
            self.store.run(lambda tx: self.engine.apply_shipment(tx, request))
        except EngineError:
            pass  # nothing left to ship, or a cancelled order: refused, and nothing changed

    @rule(
        sku=st.sampled_from(SIMPLE), location=st.sampled_from(LOCATIONS), delta=st.integers(-3, 10)
    )
    def receive_or_adjust(self, sku, location, delta):
        self.tick()
        self.store.run(lambda tx: self.engine.apply_movement(tx, sku, delta, location=location))

    @rule(sku=st.sampled_from(SIMPLE), location=st.sampled_from(LOCATIONS), qty=st.integers(0, 20))
    def count(self, sku, location, qty):
        self.tick()
        self.store.run(lambda tx: self.engine.set_count(tx, sku, qty, location=location))

    # -- rules: pushes, drift, restarts -------------------------------------------------------

    @rule()
    def pusher_drains_outbox(self):
        self.tick()

        def drain(tx):
            for row in tx.outbox_rows(state="pending"):
                if row.kind == "stock":
                    self.engine.confirm_stock_push(tx, row.id)
                else:
                    tx.set_outbox_state(row.id, "done")

        self.store.run(drain)

    @rule(
        channel=st.sampled_from(sorted(RULES.channels)),
        sku=st.sampled_from([*SIMPLE, "BOX"]),
        shift=st.integers(-3, 3),
    )
    def reconcile_sees_level(self, channel, sku, shift):
        """The channel shows a level: the expected one, or one a person edited there."""
        self.tick()

        def observe(tx):
            expected = self.engine._expected_channel_qty(tx, channel, sku)
            base = expected if expected is not None else 0
            self.engine.observe_level(tx, channel, sku, max(base + shift, 0))

        self.store.run(observe)

    @rule()
    def restart(self):
        self.store.close()
        self.store = Store(self.path, clock=self.clock)

    # -- invariants ---------------------------------------------------------------------------

    def query(self, sql, params=()):
        return [tuple(row) for row in self.store.reader().execute(sql, params)]

    @invariant()
    def stock_equals_ledger(self):
        bad = self.query(
            "SELECT s.sku, s.location, s.on_hand, "
            "(SELECT coalesce(sum(delta), 0) FROM movements m "
            " WHERE m.sku = s.sku AND m.location = s.location) FROM stock s"
        )
        assert all(on_hand == ledger for _, _, on_hand, ledger in bad), bad
        orphans = self.query(
            "SELECT count(*) FROM movements m WHERE NOT EXISTS "
            "(SELECT 1 FROM stock s WHERE s.sku = m.sku AND s.location = m.location)"
        )
        assert orphans == [(0,)]

    @invariant()
    def committed_equals_open_remainders(self):
        expected: dict[str, int] = dict.fromkeys(SIMPLE, 0)
        for key in self.delivered:
            stored = (
                self.store.reader()
                .execute("SELECT status FROM orders WHERE channel = ? AND external_id = ?", key)
                .fetchone()
            )
            status = stored[0]
            reserving = status in ("open", "partially_shipped") or (
                status == "pending" and RULES.unpaid_reserves
            )
            if not reserving:
                continue
            for sku, qty, shipped, cancelled in self.query(
                "SELECT sku, qty, qty_shipped, qty_cancelled FROM order_lines "
                "WHERE channel = ? AND external_id = ?",
                key,
            ):
                remaining = qty - shipped - cancelled
                for comp, per in BUNDLE.get(sku, {sku: 1} if sku in SIMPLE else {}).items():
                    expected[comp] += remaining * per
        actual = {s: c for s, c in self.query("SELECT sku, committed FROM skus") if s in SIMPLE}
        assert actual == expected

    @invariant()
    def each_order_once_at_its_newest_delivered_version(self):
        rows = self.query("SELECT channel, external_id, updated_at, content_hash FROM orders")
        assert len(rows) == len({(c, i) for c, i, _, _ in rows}) == len(self.delivered)
        stored = {(c, i): (u, h) for c, i, u, h in rows}
        for key, indexes in self.delivered.items():
            newest = max(
                (self.versions[key][i].updated_at, content_hash(self.versions[key][i]))
                for i in indexes
            )
            when, digest = stored[key]
            assert (when, digest) == (newest[0].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), newest[1])

    @invariant()
    def published_numbers_are_current_and_bounded(self):
        on_hand: dict[tuple[str, str], int] = {
            (s, loc): q for s, loc, q in self.query("SELECT sku, location, on_hand FROM stock")
        }
        committed = dict(self.query("SELECT sku, committed FROM skus"))
        targets = {
            (c, s): t for c, s, t in self.query("SELECT channel, sku, target_qty FROM listings")
        }
        for ch in RULES.channels.values():

            def avail(sku, locations=ch.locations):
                return sum(on_hand.get((sku, loc), 0) for loc in locations) - committed[sku]

            for sku in [*SIMPLE, "BOX"]:
                if sku == "BOX":
                    available = min(avail(k) // q for k, q in BUNDLE["BOX"].items())
                else:
                    available = avail(sku)
                rule = RULES.resolve(ch.name, sku)
                target = targets[(ch.name, sku)]
                if rule.fixed_qty is not None:
                    assert target == rule.fixed_qty
                    continue
                assert 0 <= target <= max(available - rule.buffer, 0)
                share = max(available, 0) * rule.allocation_pct // 100
                want = max(share - rule.buffer, 0)
                if rule.max_qty is not None:
                    want = min(want, rule.max_qty)
                assert target == want, (ch.name, sku, target, want)

    @invariant()
    def one_pending_push_per_changed_number_with_newest_value(self):
        pending: dict[tuple[str, str], list[int]] = {}
        for channel, key, value in self.query(
            "SELECT channel, key, value FROM outbox WHERE kind = 'stock' AND state = 'pending'"
        ):
            pending.setdefault((channel, key), []).append(json.loads(value))
        for channel, sku, target, published in self.query(
            "SELECT channel, sku, target_qty, published_qty FROM listings"
        ):
            values = pending.get((channel, sku), [])
            assert len(values) <= 1
            if target != published:
                assert values == [target], (channel, sku, target, published, values)
            elif values:
                assert values == [target]


EngineMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("STORESYNC_SM_EXAMPLES", "150")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineStateMachine = EngineMachine.TestCase
