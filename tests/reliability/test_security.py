"""Security: no secret leaks, the ops API is guarded, and the ops listener stays on loopback.

- A run on all four channels with harsh faults (errors, resets, truncated bodies, dropped and
  duplicated webhooks), shoppers, a warehouse shipping, and one channel's access tokens revoked
  mid-run. Afterwards every line the agent logged, and every ops answer (/status, /metrics, the
  HTML page, /outbox, `storesync status`), is scanned for every configured secret and every
  access token the channels minted. None may appear.
- Every ops POST without the ops token, or with a wrong one, gets 401 and changes nothing.
- An ops listener on a non-loopback address is refused at start (exit code 2, saying why) unless
  `allow_remote_ops = true`.

The CI subset and the full run differ only in how long shoppers buy.
The systemd unit's `systemd-analyze security` exposure figure is checked in tests/systemd.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agent.demo.observe import Ledger
from agent.demo.run import DemoOptions, DemoRun
from agent.demo.traffic import Traffic, TrafficSettings
from agent.demo.world import World, WorldSettings, available_kinds, demo_tuning
from agent.processes import REPO, child_env, free_port
from tests.reliability.scale import seconds

SKUS = [f"SEC-{n:03d}" for n in range(1, 13)]


def configured_secrets(world: World) -> dict[str, str]:
    """Every secret the agent was given, by where it came from."""
    found = {"ops token": world.ops_token}
    for channel in world.channels.values():
        found[f"{channel.name} api key"] = channel.api_key
        found[f"{channel.name} webhook secret"] = channel.webhook_secret
        for key, value in channel.keys.plain.items():
            if "secret" in key and isinstance(value, str):
                found[f"{channel.name} {key}"] = value
    return found


def minted_tokens(world: World) -> dict[str, str]:
    """Access tokens the channels handed the agent (Amazon, eBay and Shopify keep them)."""
    found: dict[str, str] = {}
    for channel in world.channels.values():
        tokens = getattr(channel.sandbox.records, "tokens", {})
        for n, token in enumerate(tokens):
            found[f"{channel.name} minted token {n}"] = str(token)
    return found


async def ops_answers(world: World) -> dict[str, str]:
    """What an operator can read from the agent, by where it was read."""
    answers = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for path in ("/status", "/metrics", "/", "/outbox", "/outbox?dead=1"):
            response = await client.get(f"{world.ops_url}{path}")
            answers[path] = response.text
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agent.cli", "--config", str(world.config_path), "status"],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    answers["storesync status"] = cli.stdout + cli.stderr
    return answers


def leaks(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Each (secret, place) pair where a secret shows."""
    return [
        f"{what} in {where}"
        for where, text in texts.items()
        for what, secret in secrets.items()
        if len(secret) >= 8 and secret in text
    ]


async def test_no_secret_reaches_a_log_line_or_an_ops_answer(tmp_path: Path) -> None:
    kinds = available_kinds()
    sandbox_options, channel_options = demo_tuning(kinds)
    settings = WorldSettings(
        kinds=kinds, skus=SKUS, stock=40, faults="harsh",
        sandbox_options=sandbox_options, channel_options=channel_options,
    )
    demo = DemoRun(DemoOptions(tmp_path, settings, TrafficSettings(rate=4), duration_s=0),
                   say=lambda _line: None)
    world = demo.world
    await world.start(timeout=180)
    tokens: dict[str, str] = {}
    try:
        traffic = Traffic({c.name: c.url for c in world.channels.values()}, SKUS,
                          Ledger(dict.fromkeys(SKUS, 40)), None, TrafficSettings(rate=4),
                          ship=demo.ship)
        stop_shipping = asyncio.Event()
        shipping = asyncio.create_task(traffic.warehouse(stop_shipping))
        shopping = asyncio.create_task(traffic.shoppers(seconds(ci=8, full=60)))
        # Halfway, eBay forgets every token it minted: the agent must fetch a new one, and its
        # error paths run with a token in hand.
        await asyncio.sleep(0)
        ebay = world.channels.get("ebay")
        if ebay is not None:
            await world.wait_for(lambda: minted_tokens(world), timeout=30,
                                 what="a channel to mint an access token")
            tokens.update(minted_tokens(world))
            ebay.sandbox.revoke_tokens()  # type: ignore[attr-defined]
        await shopping
        stop_shipping.set()
        await shipping
        await traffic.aclose()
        tokens.update(minted_tokens(world))
        answers = await ops_answers(world)
    finally:
        await world.stop()
    assert any("token" in name for name in tokens), "no channel minted a token: nothing was tested"
    secrets = {**configured_secrets(world), **tokens}
    log = world.agent.log() if world.agent else ""
    assert log.count("\n") > 20, "the agent logged almost nothing: the scan would prove nothing"
    # The control: the scan does find the configured secrets where they do belong.
    config = world.config_path.read_text()
    configured = configured_secrets(world)
    assert len(leaks({"config": config}, configured)) == len(configured)
    assert leaks({"agent.log": log, **answers}, secrets) == []


def test_every_ops_post_needs_the_ops_token(tmp_path: Path) -> None:
    from tests.runtime.harness import Daemon, Sandbox

    shop = Sandbox(tmp_path, "shop")
    daemon = Daemon(tmp_path, [shop], skus={"MUG": 5}).start()
    try:
        posts = [
            ("/shipments", {"channel": "shop", "order_id": "1", "carrier": "UPS",
                            "tracking_number": "1Z", "lines": {"MUG": 1}}),
            ("/stock/MUG", {"set": 99}),
            ("/channels/shop/pause", None),
            ("/channels/shop/resume", None),
            ("/channels/shop/sync", None),
            ("/outbox/retry-dead", None),
            ("/outbox/1/retry", None),
        ]
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            for path, body in posts:
                response = httpx.post(f"{daemon.ops}{path}", json=body, headers=headers,
                                      timeout=10)
                assert response.status_code == 401, (path, headers, response.text)
        status = daemon.status()
        assert status["channels"]["shop"]["state"] != "paused"
        assert daemon.query("SELECT count(*) FROM shipments")[0][0] == 0
        assert daemon.query("SELECT on_hand FROM stock WHERE sku = 'MUG'") != [(99,)]
    finally:
        daemon.stop()
        shop.stop()


@pytest.mark.parametrize("allowed", [False, True])
def test_the_ops_listener_stays_on_loopback_unless_the_config_says_otherwise(
    tmp_path: Path, allowed: bool
) -> None:
    config = tmp_path / "storesync.toml"
    config.write_text(
        "[agent]\n"
        'database = "storesync.db"\n'
        f'webhook_listen = "127.0.0.1:{free_port()}"\n'
        f'ops_listen = "0.0.0.0:{free_port()}"\n'
        'ops_token = "a-long-enough-ops-token"\n'
        + ("allow_remote_ops = true\n" if allowed else "")
    )
    # Refused: `storesync run` exits 2 (a config error systemd does not retry) and says why.
    # Allowed: the same config passes the check the daemon runs at start.
    command = "check-config" if allowed else "run"
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(config), command],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    if allowed:
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        assert done.returncode == 2, done.stdout + done.stderr
        assert "ops_listen" in done.stderr and "allow_remote_ops" in done.stderr
