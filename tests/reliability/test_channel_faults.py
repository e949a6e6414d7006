"""Channel faults: while shoppers buy on all four stores, one store (or all at once) misbehaves,
and nothing is lost.

Each scenario switches one fault on in the target store's sandbox while sales flow on every
store: 10% 5xx answers, a 429 storm with Retry-After, 2 s latency on every request, connection
resets (before and after the request took effect), truncated JSON bodies, an outage (every
request 503), or expired credentials (the store rotates the key: AuthError). While the fault is
on, a sale on a healthy store must reach the other healthy stores within PROMPT_S, and every
order on a healthy store is stored within PROMPT_S of its checkout. Once it is
off, within CONVERGE_S every store shows exactly the published number, which is the starting
stock less the units shoppers kept; then every order is stored once and every shipment is on
its store (within CONVERGE_S too, or DRAIN_S after an outage: the shipments queued meanwhile
go out at the store's own rate).
Throughout, no store answers 429 except where a storm was injected (each sandbox logs the fault
behind every answer), and during a storm the agent waits out each Retry-After in the scope the
store meters (the whole store; an Amazon operation; an eBay API). Expired
credentials put the store in needs_reauth with its outbox kept; writing the new key to the
secret file and sending SIGHUP drains it.

All scenarios share one world (sandboxes in this process, the real agent in a child process;
see fault_world.py), so the agent also has to recover from each fault before the next one. The
full run (STORESYNC_RELIABILITY=full) plays every fault against each store and against all
four at once (7 x 5 scenarios), with minute-long faults and a 5-minute outage; the CI subset
plays each fault once against one store, rotating through the stores, plus 5xx on all at once,
with faults of a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from agent.demo.observe import Ledger
from agent.demo.world import STORE_KINDS, World
from tests.reliability.fault_world import (
    PROBE,
    SKUS,
    STOCK,
    Shop,
    converge,
    early_after_storm_429,
    hearing_lags,
    log_size,
    reload_with_key,
    requests_since,
    rotate_credentials,
    self_inflicted_429s,
    start_world,
    storm_429s,
    storm_bound,
    tracebacks,
)
from tests.reliability.scale import FULL, seconds, size

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAULT_S = seconds(ci=3, full=20)  # how long each fault stays on (storms, latency, errors ...)
OUTAGE_S = seconds(ci=5, full=300)
STORM_S = seconds(ci=4, full=20)
RETRY_AFTER_S = 2
ORDERS_PER_S = 3.0
# Injected faults each target must have answered before the fault goes off.
MIN_MET = size(ci=1, full=3)
# A sale on a healthy webhook store reaches the other healthy stores within this, fault or not.
PROMPT_S = 15.0
# From the fault's end until every store converged: a few pushes retried with backoff
# (push_retry_max 5 s), a poll of each store, Amazon's settle time, and one reconcile sweep
# (15 s, fault_world.py) for a sale on Amazon that raced a quantity patch there.
CONVERGE_S = 45.0
# An outage leaves the warehouse's shipments for the sick store queued (about 90 at full size).
# They go out one or two calls each, between stock pushes, at what the store's rate limit and
# these 2 cores allow (about one a second while all four stores sell); stock must be in step
# within CONVERGE_S regardless.
DRAIN_S = {"outage": CONVERGE_S + OUTAGE_S}
# How long the warehouse waits for the agent to know an order: an order on a store in outage
# is only heard once the outage ends.
ORDER_WAIT_S = OUTAGE_S + CONVERGE_S

KNOBS: dict[str, dict[str, Any]] = {
    "5xx": {"error_rate": 0.1, "error_status": 500},
    "429-storm": {"storm_s": STORM_S, "storm_retry_after_s": RETRY_AFTER_S},
    "latency": {"latency_s": 2.0},
    "resets": {"reset_rate": 0.05, "reset_after_rate": 0.05},
    "truncated-json": {"truncate_rate": 0.1},
    "outage": {"outage": True},
    "expired-credentials": {},
}
FAULTS = list(KNOBS)
ALL = "all"


def matrix() -> list[tuple[str, str]]:
    """(fault, target) pairs: everything in the full run, one store per fault in CI."""
    if FULL:
        return [(f, t) for f in FAULTS for t in (*STORE_KINDS, ALL)]
    # Rotate the target by the fault's index so CI covers every store over the seven faults.
    pairs = [(f, STORE_KINDS[i % len(STORE_KINDS)]) for i, f in enumerate(FAULTS)]
    return [*pairs, ("5xx", ALL)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shop]:
    world = await start_world(tmp_path_factory.mktemp("faults"))
    ledger = Ledger({sku: STOCK for sku in [*SKUS, PROBE]})
    try:
        yield Shop(world, ledger, order_timeout_s=ORDER_WAIT_S)
    finally:
        code = await world.stop()
        assert code == 0, "the agent did not stop cleanly"


def hearing(lags: dict[str, float]) -> str:
    """The longest wait for an order on a healthy store, for the scenario's report line."""
    return f"{max(lags.values()):.1f} s" if lags else "n/a (no healthy store)"


def probe_origin(healthy: list[str]) -> str | None:
    """The healthy store a probe sale is placed on: a webhook store, heard at once, if any."""
    for kind in ("shopify", "woocommerce", "ebay", "amazon"):
        if kind in healthy:
            return kind
    return None


async def dead_letters(world: World) -> dict[str, int]:
    """Each channel's dead-lettered outbox rows, as /status counts them."""
    return {n: c["outbox"]["dead"] for n, c in (await world.status())["channels"].items()}


@pytest.mark.parametrize(("fault", "target"), matrix(), ids=[f"{f}-{t}" for f, t in matrix()])
async def test_a_channel_fault_loses_nothing(shop: Shop, fault: str, target: str) -> None:
    world = shop.world
    targets = list(STORE_KINDS) if target == ALL else [target]
    healthy = [n for n in world.channels if n not in targets]
    seed = 100 + FAULTS.index(fault) * 10 + (len(STORE_KINDS) if target == ALL else
                                            STORE_KINDS.index(target))
    since = time.time()
    log_start = log_size(world)
    # An earlier scenario's shopper errors and dead letters failed that scenario, not this one.
    errors_before = len(shop.errors)
    dead_before = await dead_letters(world)
    window = OUTAGE_S if fault == "outage" else FAULT_S
    injected: dict[str, Counter[str]] = {}
    keys: dict[str, str] = {}
    traffic = shop.traffic(seed, ORDERS_PER_S)
    # Shoppers outlast the fault a little, so sales land before, during and after it.
    shoppers = asyncio.create_task(shop.run(traffic, window + 2))
    started = time.monotonic()
    try:
        if fault == "expired-credentials":
            keys = {name: rotate_credentials(world, name) for name in targets}
            await world.wait_for(
                lambda: reauth_with_outbox(world, targets), timeout=PROMPT_S + window,
                what=f"{', '.join(targets)} in needs_reauth with stock waiting in the outbox",
            )
        else:
            for name in targets:
                sandbox = world.channels[name].sandbox
                sandbox.faults.update({**KNOBS[fault], "seed": seed}, now=sandbox.clock.monotonic())
        origin = probe_origin(healthy)
        prompt = None
        if origin is not None:
            prompt = await shop.probe(origin, healthy, timeout=PROMPT_S)
        if fault == "expired-credentials":
            status = await world.status()
            for name in targets:
                # The store is paused, not given up on: nothing dead-lettered, stock kept.
                assert status["channels"][name]["state"] == "needs_reauth"
                assert status["channels"][name]["outbox"]["depth"] > 0
                assert status["channels"][name]["outbox"]["dead"] == dead_before[name]
        # Hold the fault for its whole window (the probe may have used part of it), and until
        # it met the agent a few times on every target: a fault nobody met proves nothing.
        await asyncio.sleep(max(0.0, window - (time.monotonic() - started)))
        if fault != "expired-credentials":
            await world.wait_for(
                lambda: all(met(world, n, fault, since) >= MIN_MET for n in targets),
                timeout=CONVERGE_S, what=f"{fault} to meet the agent on {', '.join(targets)}",
            )
    finally:
        for name in targets:
            faults = world.channels[name].sandbox.faults
            injected[name] = Counter(faults.injected)
            if fault == "latency":
                injected[name]["delayed"] = met(world, name, fault, since)
            faults.clear()
        if fault == "expired-credentials":
            for name in targets[1:]:
                world.write_secret(name, keys[name])
            reload_with_key(world, targets[0], keys[targets[0]])  # one SIGHUP for every key
        await shoppers
    ended = time.monotonic()
    # No oversell first: every store shows the sold-through stock. Then nothing lost: every
    # order stored once, every shipment on its store, every outbox empty.
    stock_took = await converge(world, shop, timeout=CONVERGE_S, stock_only=True)
    took = stock_took + await converge(world, shop, timeout=DRAIN_S.get(fault, CONVERGE_S))

    errors = shop.errors[errors_before:]
    assert not errors, errors[:5]
    # Nothing set aside: every fault here is the store's, not a push's, so none is a dead letter.
    dead = await dead_letters(world)
    assert dead == dead_before, f"dead letters: {dead} (before this scenario: {dead_before})"
    crashed = tracebacks(world, log_start)
    assert not crashed, f"the agent logged {len(crashed)} tracebacks: {crashed[:3]}"
    # Healthy stores' orders were heard as promptly as ever, whatever the sick one did.
    lags = hearing_lags(world, healthy, since)
    assert all(lag <= PROMPT_S for lag in lags.values()), f"orders heard late: {lags}"
    records = {name: requests_since(world, name, since) for name in world.channels}
    own = {n: self_inflicted_429s(r) for n, r in records.items()}
    own_429s = {n: len(r) for n, r in own.items()}
    assert set(own_429s.values()) == {0}, f"429s no fault injected: {own}"
    if fault != "expired-credentials":
        assert all(sum(injected[n].values()) >= MIN_MET for n in targets), injected
    if fault == "429-storm":
        for name in targets:
            early = early_after_storm_429(records[name], RETRY_AFTER_S)
            assert not early, f"{name} was sent requests inside Retry-After: {early[:5]}"
            # Each scope the store meters alone (all of Shopify; one Amazon operation) meets
            # the storm on its own, and each honours Retry-After.
            storms = storm_429s(records[name])
            bound = storm_bound(STORM_S, RETRY_AFTER_S)
            assert all(n <= bound for n in storms.values()), (name, storms, bound)
    print(
        f"\n[fault] {fault} on {target}: injected "
        f"{ {n: dict(c) for n, c in injected.items()} }, probe {prompt and round(prompt, 2)} s, "
        f"fault {ended - started:.1f} s, stock in step {stock_took:.1f} s after, "
        f"converged {took:.1f} s after, "
        f"orders {len(shop.ledger.sales)}, shipped {len(shop.shipped)}, 429s {own_429s}, "
        f"healthy stores heard orders within {hearing(lags)}, "
        f"requests {({n: len(r) for n, r in records.items()})}"
    )


def met(world: World, name: str, fault: str, since: float) -> int:
    """How many times the fault answered a request on store `name` so far."""
    if fault == "latency":  # every request is delayed; the sandbox counts no "injected" for it
        return len(requests_since(world, name, since))
    return sum(world.channels[name].sandbox.faults.injected.values())


async def reauth_with_outbox(world: World, targets: list[str]) -> bool:
    """Every target in needs_reauth, each with stock pushes kept in its outbox."""
    status = await world.status()
    channels = status["channels"]
    return all(
        channels[n]["state"] == "needs_reauth" and channels[n]["outbox"]["depth"] for n in targets
    )
