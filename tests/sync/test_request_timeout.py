"""`request_timeout` reaches the channel's HTTP client: a channel slower than it is a retryable
timeout (the call is tried again later), a channel within it answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.sandbox_config import channel_table
from agent.sync.factory import build_connector
from connectors.base import RetryableError
from connectors.reference.sandbox import ReferenceSandbox
from connectors.sandbox import serve

API_KEY = "timeout-test-key"
LATENCY_S = 0.5


async def fetch_with(tmp_path: Path, url: str, request_timeout: str) -> int:
    """Build the channel from a config with `request_timeout` and read its listings."""
    path = tmp_path / "storesync.toml"
    table = channel_table("ref", "reference", url, API_KEY,
                          {"request_timeout": request_timeout})
    path.write_text(f'[agent]\ndatabase = "x.db"\n\n{table}\n')
    path.chmod(0o600)
    config = load_config(path)
    connector = build_connector("ref", config.channels["ref"], config.sync)
    try:
        return len(await connector.fetch_listings())
    finally:
        await connector.aclose()


@pytest.mark.asyncio
async def test_a_channel_slower_than_request_timeout_times_out_and_one_within_it_answers(
    tmp_path: Path,
) -> None:
    sandbox = ReferenceSandbox(api_key=API_KEY, seed=3)
    sandbox.seed_catalog({"MUG": 4, "CAP": 2})
    sandbox.faults.update({"latency_s": LATENCY_S}, now=sandbox.clock.monotonic())
    served = await serve(sandbox.build_app())
    try:
        with pytest.raises(RetryableError, match="timed out|timeout"):
            await fetch_with(tmp_path, served.url, "100ms")
        assert await fetch_with(tmp_path, served.url, "5s") == 2
    finally:
        await served.close()
