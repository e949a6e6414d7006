"""End to end: the daemon and four store sandboxes, 200 random orders, lossy, duplicated webhooks.

Shoppers buy on Shopify, WooCommerce, Amazon and eBay; some orders are cancelled or refunded; the
warehouse ships some in part through the ops API. Shopify and WooCommerce send webhooks, a fifth
of them dropped and a fifth duplicated; Amazon and eBay are polled only. Within one reconcile
interval of the last event, every order is stored exactly once, every store shows exactly the
numbers the engine published, every shipment is on its store with its tracking number, and no
sandbox saw a request beyond its rate limit. Every request storesync sent to Amazon and eBay, and
every answer, fits the official API models.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.runtime.harness import Daemon, Sandbox, wait_until
from tests.specs.channels import check_amazon_exchanges, check_ebay_exchanges

ORDERS = 200
SKUS = {f"E2E-{n:02d}": 40 for n in range(20)}
RECONCILE_S = 15
STORES = [("shop", "shopify"), ("woo", "woocommerce"), ("amz", "amazon"), ("bay", "ebay")]
POLLED = {"amazon", "ebay"}
# Amazon serves orders once they are 2 minutes old; its sandbox here after 3 s (else the test
# would wait minutes). getOrders allows a burst of 20, then one call a minute: a 15 s poll and a
# 2-minute sweep stay inside it for a run of a few minutes.
AMAZON_POLL_S, AMAZON_SETTLE_S = 15, 3
CHANNEL_OPTIONS = {
    "amz": {
        "order_settle": f"{AMAZON_SETTLE_S}s",
        "poll_interval": f"{AMAZON_POLL_S}s",
        "reconcile_interval": "120s",
    }
}
# Webhook stores converge within one reconcile interval; a polled store within one poll after
# its orders settle, plus reading their items: getOrderItems is one call per order, a burst of
# 30 then 0.5 a second on the default plan, so the last of ~50 Amazon orders waits ~40 s.
AMAZON_ITEMS_S = 40
CONVERGE_S = max(RECONCILE_S, AMAZON_POLL_S + AMAZON_SETTLE_S + AMAZON_ITEMS_S) + 5


@pytest.fixture
def world(tmp_path):
    sandboxes = [
        Sandbox(tmp_path, name, kind=kind, record_exchanges=kind in POLLED)
        for name, kind in STORES
    ]
    daemon = Daemon(
        tmp_path, sandboxes, skus=SKUS, poll_interval="2s", reconcile_interval=f"{RECONCILE_S}s",
        channel_options=CHANNEL_OPTIONS,
    )
    try:
        for sandbox in sandboxes:
            sandbox.seed({sku: 0 for sku in SKUS})
            if sandbox.kind == "shopify":
                # 200 orders in half a minute is a Plus shop's flash sale: Plus-like cost limits
                # (https://shopify.dev/docs/api/usage/rate-limits), on both sides.
                sandbox.control("PUT", "/config", {"capacity": 2000, "restore_rate": 1000})
            if sandbox.kind == "amazon":
                sandbox.control("PUT", "/config", {"min_age_s": 3})
        daemon.start()
        for sandbox in sandboxes:
            if sandbox.kind not in POLLED:
                sandbox.send_webhooks_to(f"{daemon.webhooks}/webhooks/{sandbox.name}")
                sandbox.faults(drop_rate=0.2, duplicate_rate=0.2, seed=7)
        for sku, qty in SKUS.items():
            daemon.set_stock(sku, qty)
        for sandbox in sandboxes:
            wait_until(
                lambda s=sandbox: s.levels() == SKUS,
                timeout=30,
                what=f"{sandbox.name} to show the starting stock",
            )
        yield daemon, sandboxes
    finally:
        daemon.stop()
        for sandbox in sandboxes:
            sandbox.stop()


def stored_order(daemon: Daemon, channel: str, order_id: str) -> bool:
    return bool(
        daemon.query(
            "SELECT 1 FROM orders WHERE channel = ? AND external_id = ?", (channel, order_id)
        )
    )


def test_four_stores_converge_under_lossy_webhooks(world):
    daemon, sandboxes = world
    rng = random.Random(2026)
    placed: dict[str, list[str]] = {s.name: [] for s in sandboxes}
    shipped: list[tuple[str, str, str]] = []  # (channel, order id, tracking number)
    # The warehouse ships one line in part of an order once the agent knows it; shoppers do
    # not wait for that (a polled Amazon order is known some 20 s after it was placed).
    to_ship: list[tuple[Sandbox, str, dict[str, int], str]] = []

    def ship(store: Sandbox, order_id: str, lines: dict[str, int], tracking: str) -> None:
        sku, qty = next(iter(lines.items()))
        response = daemon.post(
            "/shipments",
            {
                "channel": store.name,
                "order_id": order_id,
                "carrier": "UPS",
                "tracking_number": tracking,
                "tracking_url": f"https://ups.example/{tracking}",
                "lines": {sku: 1 if qty > 1 else qty},
            },
        )
        assert response.status_code == 201, response.text
        shipped.append((store.name, order_id, tracking))

    def ship_known() -> None:
        for parcel in list(to_ship):
            if stored_order(daemon, parcel[0].name, parcel[1]):
                to_ship.remove(parcel)
                ship(*parcel)

    for n in range(ORDERS):
        store = rng.choice(sandboxes)
        lines = {sku: rng.randint(1, 2) for sku in rng.sample(sorted(SKUS), rng.randint(1, 2))}
        available = store.levels()
        if any(available.get(sku, 0) < qty for sku, qty in lines.items()):
            continue  # the store itself refuses to oversell; the shopper goes elsewhere
        order_id = str(store.buy(lines)["id"])
        placed[store.name].append(order_id)
        roll = rng.random()
        if roll < 0.10:
            store.control("POST", f"/orders/{order_id}/cancel")
        elif roll < 0.15 and store.kind == "amazon":
            # Amazon refunds only shipped orders (the Finances side); unshipped, buyers cancel.
            store.control("POST", f"/orders/{order_id}/cancel")
        elif roll < 0.15:
            store.control("POST", f"/orders/{order_id}/refund", {"restock": True})
        elif roll < 0.45:
            to_ship.append((store, order_id, lines, f"1Z{n:06d}"))
        ship_known()
    for store, order_id, lines, tracking in to_ship:
        wait_until(
            lambda s=store, o=order_id: stored_order(daemon, s.name, o),
            timeout=CONVERGE_S,
            what=f"order {order_id} on {store.name}",
        )
        ship(store, order_id, lines, tracking)
    last_event = time.monotonic()
    assert sum(len(ids) for ids in placed.values()) >= ORDERS * 0.8
    assert len(shipped) >= 30
    for sandbox in sandboxes:  # the faults really happened
        if sandbox.kind in POLLED:
            continue
        hooks = sandbox.state()["webhooks"]
        assert hooks["dropped"] > 0 and hooks["duplicated"] > 0, hooks

    behind: list[str] = []  # why the last check said no, for the failure message

    def converged() -> bool:
        behind.clear()
        for sandbox in sandboxes:
            state = sandbox.state()
            ids = {str(i) for i in state["orders"]}
            stored = {
                r[0]
                for r in daemon.query(
                    "SELECT external_id FROM orders WHERE channel = ?", (sandbox.name,)
                )
            }
            if stored != ids:
                behind.append(f"{sandbox.name}: orders not stored {sorted(ids - stored)[:5]}")
            elif not daemon.converged(sandbox, list(SKUS)):
                behind.append(f"{sandbox.name}: levels differ from the published numbers")
        missing = [
            (c, o, t) for c, o, t in shipped
            if not tracking_on_store(next(s for s in sandboxes if s.name == c), o, t)
        ]
        if missing:
            behind.append(f"shipments not on their store: {missing[:5]}")
        return not behind

    try:
        wait_until(converged, timeout=CONVERGE_S, every=0.5, what="every store to converge")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {'; '.join(behind)}") from exc
    converged_after = time.monotonic() - last_event
    assert converged_after <= CONVERGE_S

    # Every order exactly once; cancelled ones stored as cancelled.
    counts = daemon.query(
        "SELECT channel, external_id, count(*) FROM orders "
        "GROUP BY channel, external_id HAVING count(*) > 1"
    )
    assert counts == []
    over_limit = {sandbox.name: sandbox.state()["over_limit"] for sandbox in sandboxes}
    assert set(over_limit.values()) == {0}, f"requests over a channel's limit: {over_limit}"
    status = daemon.status()
    assert all(ch["state"] == "ok" for ch in status["channels"].values()), status["channels"]
    assert status["inbox"]["parked"] == 0
    check_official_models(sandboxes)


def tracking_on_store(sandbox: Sandbox, order_id: str, tracking: str) -> bool:
    """Whether the store shows this shipment's tracking number on the order."""
    return any(
        s.get("tracking_number") == tracking and str(s.get("order_id")) == order_id
        for s in sandbox.state().get("shipments", [])
    )


def check_official_models(sandboxes: list[Sandbox]) -> None:
    """Every exchange with Amazon and eBay fits the vendor's models (eBay's: when available)."""
    for sandbox in sandboxes:
        if sandbox.kind not in POLLED:
            continue
        recording = sandbox.control("GET", "/exchanges")
        assert recording["dropped"] == 0
        if sandbox.kind == "amazon":
            operations = check_amazon_exchanges(recording["exchanges"])
            assert {"getOrders", "getOrderItems", "confirmShipment"} <= set(operations)
            assert {"patchListingsItem", "createFeed"} & set(operations), operations
        else:
            routes = check_ebay_exchanges(recording["exchanges"])
            assert "POST /sell/inventory/v1/bulk_update_price_quantity" in routes, routes
            assert "POST /sell/fulfillment/v1/order/{orderId}/shipping_fulfillment" in routes
