"""The shared OAuth token cache: reuse until near expiry, one grant for concurrent callers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from connectors.tokens import TokenCache

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_concurrent_callers_share_one_grant_and_reuse_it_until_near_expiry() -> None:
    now = [T0]
    grants: list[int] = []
    release = asyncio.Event()

    async def grant() -> tuple[str, float]:
        grants.append(len(grants))
        await release.wait()  # a slow token endpoint: everyone else queues behind this call
        return f"token-{len(grants)}", 3600.0

    cache = TokenCache(grant, clock=lambda: now[0], margin=timedelta(minutes=5))
    waiting = [asyncio.create_task(cache.get()) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert set(await asyncio.gather(*waiting)) == {"token-1"}
    now[0] = T0 + timedelta(minutes=54)
    assert await cache.get() == "token-1"  # 6 minutes left: still good
    now[0] = T0 + timedelta(minutes=56)
    assert await cache.get() == "token-2"  # within the margin: refreshed
    assert cache.expires_at == T0 + timedelta(minutes=56, hours=1)
    cache.forget("token-1")  # an old token refused: nothing to drop
    assert await cache.get() == "token-2"
    cache.forget("token-2")  # the current one refused: the next caller gets a new one
    assert await cache.get() == "token-3"
    assert len(grants) == 3
