"""eBay refusing a listing's revisions for the day: the agent keeps the newest quantity for
after midnight Pacific, spends no attempt on it and sets nothing aside as a dead letter, while
the other channels go on."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.demo.world import World, WorldSettings

pytestmark = pytest.mark.asyncio
SKU = "CAP-1"


async def test_a_listing_out_of_revisions_waits_for_midnight_and_is_not_dead_lettered(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, WorldSettings(kinds=["woocommerce", "ebay"], skus=[SKU], stock=20))
    await world.start(timeout=120)
    try:
        ebay = world.channels["ebay"].sandbox
        ebay.configure({"revision_cap": 0})  # type: ignore[attr-defined]  # spent for today
        world.channels["woocommerce"].sandbox.place_order([(SKU, 3)])  # type: ignore[attr-defined]

        async def waiting() -> list[tuple[str, int, str, str]]:
            return world.read(lambda conn: conn.execute(
                "SELECT state, attempts, last_error, next_attempt_at FROM outbox "
                "WHERE channel = 'ebay' AND key = ? AND state NOT IN ('done', 'superseded') "
                "AND last_error IS NOT NULL", (SKU,),
            ).fetchall())

        await world.wait_for(waiting, timeout=60, what="eBay's refusal to reach the outbox")
        [(state, attempts, error, _)] = await waiting()
        status = (await world.status())["channels"]
        shown = ebay.levels()[SKU]
    finally:
        assert await world.stop() == 0
    assert (state, attempts) == ("pending", 0)
    assert "midnight Pacific" in error
    assert status["ebay"]["outbox"]["dead"] == 0 and status["ebay"]["outbox"]["depth"] == 1
    assert status["woocommerce"]["outbox"]["depth"] == 0
    assert shown == 20  # eBay kept its number: the push waits rather than being thrown away
