"""The inbox processor applies stored deliveries and wakes the pushers at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from agent.engine import ChannelRules, Engine, Rules
from agent.metrics import Metrics
from agent.store import Store
from agent.sync.inbox import InboxProcessor
from connectors.base import ChannelEvent, ChannelOrder, EventKind, OrderLine, OrderStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class OrderEvents:
    """Just enough of a connector: every delivery is one order for one mug."""

    def parse_event(self, topic: str, headers: Mapping[str, str], raw: bytes) -> ChannelEvent:
        order = ChannelOrder("shop", raw.decode(), T0, OrderStatus.OPEN,
                             (OrderLine("1", "MUG", 1),), created_at=T0)
        return ChannelEvent(EventKind.ORDER, order=order)


async def test_an_applied_order_wakes_the_pushers_before_the_batch_ends(tmp_path):
    rules = Rules(
        locations=("main",),
        channels={
            "shop": ChannelRules("shop", "shopify", ("main",)),
            "woo": ChannelRules("woo", "woocommerce", ("main",)),
        },
        bundles={},
        sku_rules={},
        sku_channel_rules={},
    )
    engine = Engine(rules)
    store = Store(tmp_path / "store.db", clock=lambda: T0)
    try:
        store.run(engine.sync_catalog)
        store.run(lambda tx: engine.set_count(tx, "MUG", 10))
        store.run(lambda tx: [tx.insert_delivery("shop", f"d{n}", "orders/create", {}, b"%d" % n)
                              for n in range(3)])
        queued_when_woken: list[int] = []

        def on_applied() -> None:
            rows = store.run(lambda tx: tx.outbox_rows(state="pending", channel="woo"))
            queued_when_woken.append(len(rows))

        inbox = InboxProcessor(
            store=store,
            engine=lambda: engine,
            connectors=lambda: {"shop": OrderEvents()},  # type: ignore[dict-item]
            max_attempts=3,
            metrics=Metrics(),
            on_auth_error=lambda name, exc: None,
            on_applied=on_applied,
        )
        assert await inbox.process_once() == 3
    finally:
        store.close()
    # Woken once per delivery, each time with the push for the other store already queued.
    assert len(queued_when_woken) == 3
    assert all(count >= 1 for count in queued_when_woken)


class AbsurdFirst:
    """A connector whose first delivery is an order for 10**30 mugs (signed, well formed)."""

    def parse_event(self, topic: str, headers: Mapping[str, str], raw: bytes) -> ChannelEvent:
        qty = 10**30 if raw == b"absurd" else 1
        order = ChannelOrder("shop", raw.decode(), T0, OrderStatus.OPEN,
                             (OrderLine("1", "MUG", qty),), created_at=T0)
        return ChannelEvent(EventKind.ORDER, order=order)


async def test_a_delivery_sqlite_cannot_store_is_parked_and_the_next_is_applied(tmp_path):
    rules = Rules(locations=("main",), channels={"shop": ChannelRules("shop", "shopify",
                                                                      ("main",))},
                  bundles={}, sku_rules={}, sku_channel_rules={})
    engine = Engine(rules)
    store = Store(tmp_path / "store.db", clock=lambda: T0)
    try:
        store.run(engine.sync_catalog)
        store.run(lambda tx: engine.set_count(tx, "MUG", 10))
        store.run(lambda tx: [tx.insert_delivery("shop", key, "orders/create", {}, key.encode())
                              for key in ("absurd", "fine")])
        inbox = InboxProcessor(
            store=store, engine=lambda: engine,
            connectors=lambda: {"shop": AbsurdFirst()},  # type: ignore[dict-item]
            max_attempts=2, metrics=Metrics(), on_auth_error=lambda name, exc: None,
            on_applied=lambda: None,
        )
        for _ in range(3):
            await inbox.process_once()
        rows = dict(store.reader().execute(
            "SELECT delivery_key, parked FROM inbox").fetchall())
        stored = {r[0] for r in store.reader().execute("SELECT external_id FROM orders")}
    finally:
        store.close()
    assert rows == {"absurd": 1, "fine": 0}
    assert stored == {"fine"}
