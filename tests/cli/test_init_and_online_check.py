"""`storesync init` writes a config a merchant can fill in and validate, and
`storesync check-config --online` tries every channel's credentials and catalog on the sandboxes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.demo.world import World, WorldSettings, available_kinds
from agent.processes import REPO, child_env


def storesync(*args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], cwd=cwd or REPO,
        env=child_env(env), capture_output=True, text=True, timeout=120, check=False,
    )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an environment file."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.mark.parametrize(
    "kinds", ["shopify", "woocommerce,amazon", "shopify,woocommerce,amazon,ebay"])
def test_init_writes_a_config_that_validates_once_its_secrets_are_filled(
    tmp_path: Path, kinds: str
) -> None:
    config = tmp_path / "storesync.toml"
    done = storesync("init", "--channels", kinds, "--path", str(config))
    assert done.returncode == 0, done.stderr
    env = read_env_file(tmp_path / "storesync.env")
    assert len(env["STORESYNC_OPS_TOKEN"]) >= 24
    assert config.stat().st_mode & 0o077 == 0
    # As written, the channel secrets are empty: check-config names each one.
    empty = storesync("check-config", str(config), env=env)
    assert empty.returncode == 2
    missing = [name for name, value in env.items() if not value]
    assert missing and all(name in empty.stderr for name in missing)
    filled = {name: value or f"value-of-{name.lower()}" for name, value in env.items()}
    ok = storesync("check-config", "--json", str(config), env=filled)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["valid"] is True
    summary = storesync("check-config", str(config), env=filled).stdout
    for kind in kinds.split(","):
        assert kind in summary
    # The example's SKUs and bundle are shown commented out, never declared for real.
    live = [line for line in config.read_text().splitlines() if not line.startswith("#")]
    assert not [line for line in live if line.startswith(("[skus", "[[bundles"))]


def test_init_keeps_an_existing_config_and_names_unknown_kinds(tmp_path: Path) -> None:
    config = tmp_path / "storesync.toml"
    config.write_text("# mine\n")
    kept = storesync("init", "--channels", "shopify", "--path", str(config))
    assert kept.returncode == 2 and "--force" in kept.stderr
    assert config.read_text() == "# mine\n"
    unknown = storesync("init", "--channels", "shopify,etsy", "--path", str(tmp_path / "x.toml"))
    assert unknown.returncode == 2 and "etsy" in unknown.stderr


async def test_online_check_tries_every_channel_and_lists_unmapped_skus(tmp_path: Path) -> None:
    kinds = available_kinds()
    world = World(tmp_path, WorldSettings(kinds=kinds, skus=["SKU-A", "SKU-B"], stock=5))
    await world.start_sandboxes()
    try:
        for channel in world.channels.values():
            channel.sandbox.seed_catalog({"STRAY-1": 2})  # listed, but no master SKU
        world.write_config()
        with world.config_path.open("a") as config:
            config.write("\n[skus.NOT-LISTED]\n")
        done = await asyncio.to_thread(
            storesync, "--config", str(world.config_path), "check-config", "--online", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        report = {c["channel"]: c for c in json.loads(done.stdout)["channels"]}
        assert sorted(report) == sorted(world.channels)
        for name, channel in report.items():
            assert channel["ok"], channel
            assert [c["name"] for c in channel["checks"]] == ["credentials", "orders", "catalog"]
            assert "STRAY-1" in channel["unmapped"], name
            assert channel["not_listed"] == ["NOT-LISTED"], name
            assert channel["listings"] >= 3

        # One channel's key is wrong: that channel fails its credentials, the others pass.
        victim = world.channels[kinds[0]]
        text = world.config_path.read_text()
        world.config_path.write_text(text.replace(victim.api_key, "not-the-right-key"))
        refused = await asyncio.to_thread(
            storesync, "--config", str(world.config_path), "check-config", "--online")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "FAILED" in refused.stdout and "refused" in refused.stdout
        assert f"{len(kinds) - 1} of {len(kinds)} channel(s) passed; failed: {victim.name}" in (
            " ".join(refused.stdout.split()))
        assert "STRAY-1" in refused.stdout
    finally:
        await world.stop()
