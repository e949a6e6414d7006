"""`storesync demo`: it runs the real agent against every sandbox, and its convergence report
tells the truth both ways."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from agent.demo.run import DemoOptions, DemoRun
from agent.demo.traffic import TrafficSettings
from agent.demo.world import WorldSettings, available_kinds
from agent.processes import REPO, child_env


def test_a_short_demo_converges_on_every_channel(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "demo", "--duration", "8", "--rate", "5",
         "--skus", "20", "--dir", str(tmp_path)],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["converged"]
    assert set(report["channels"]) == set(available_kinds())
    assert report["orders"]["placed"] >= 10
    assert report["shipments"] >= 1
    assert report["oversold_units"] == 0
    for name, channel in report["channels"].items():
        assert channel["skus_matching"] == channel["skus"] == 20, name
        assert channel["state"] == "ok", name
        assert not channel["orders_missing"] and not channel["shipments_missing"], name
    assert report["propagation_ms"]["samples"] > 0
    assert "converged" in done.stdout
    assert "agent ops page: http://127.0.0.1:" in done.stdout


async def test_a_channel_showing_the_wrong_number_is_reported_not_converged(tmp_path):
    kinds = available_kinds()[:2]
    skus = ["DEMO-0001", "DEMO-0002"]
    demo = DemoRun(
        DemoOptions(tmp_path, WorldSettings(kinds=kinds, skus=skus, stock=5),
                    TrafficSettings(rate=1), duration_s=1),
        say=lambda _line: None,
    )
    await demo.world.start()
    try:
        assert (await demo.report())["converged"]
        # Someone edits the stock in the channel's admin while storesync is paused there.
        victim = demo.world.channels[kinds[1]]
        paused = await demo.world.ops("POST", f"/channels/{victim.name}/pause")
        assert paused.status_code == 200, paused.text
        async with httpx.AsyncClient() as client:  # the sandbox serves from this event loop
            edit = await client.post(f"{victim.url}/_control/listings",
                                     json={"listings": [{"sku": "DEMO-0002", "quantity": 99}]})
        assert edit.status_code < 400, edit.text
        report = await demo.report()
    finally:
        await demo.world.stop()
    assert not report["converged"]
    assert report["channels"][kinds[0]]["skus_matching"] == 2
    mismatch = report["channels"][victim.name]["mismatches"]
    assert mismatch == [{"sku": "DEMO-0002", "shown": 99, "published": 5, "expected": 5}]
