"""ship, orders, outbox and channels as an operator runs them against a real daemon and sandboxes.

Two reference stores both number their orders from 1001, so an order id alone is ambiguous.
Commands run through the CLI's own entry point, in-process for speed; one test runs the real
`python -m agent.cli` processes to prove the wiring and the exit codes a shell sees.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import pytest

from agent.cli import main
from agent.commands import context
from agent.processes import REPO, free_port
from tests.runtime.harness import Daemon, Sandbox, wait_until

SKUS = {"MUG": 20, "CAP": 20}


class Result(NamedTuple):
    """What a script sees of one command."""

    returncode: int
    stdout: str
    stderr: str


class World:
    """Two sandboxes, the daemon, and `storesync` run as a separate process."""

    def __init__(self, tmp: Path) -> None:
        self.shop = Sandbox(tmp, "shop")
        self.market = Sandbox(tmp, "market")
        for sandbox in (self.shop, self.market):
            sandbox.seed({sku: 0 for sku in SKUS})
        self.daemon = Daemon(tmp, [self.shop, self.market], skus=SKUS,
                             sync_toml="push_max_attempts = 2")
        self.daemon.start()
        for sandbox in (self.shop, self.market):
            sandbox.send_webhooks_to(f"{self.daemon.webhooks}/webhooks/{sandbox.name}")
        for sku, qty in SKUS.items():
            self.daemon.set_stock(sku, qty)
        for sandbox in (self.shop, self.market):
            wait_until(lambda s=sandbox: self.daemon.converged(s, list(SKUS)),
                       what=f"stock on {sandbox.name}")
        # The same config, but pointing at an ops port nobody listens on: "the agent is down".
        self.down = tmp / "down.toml"
        self.down.write_text(self.daemon.text.replace(
            f"127.0.0.1:{self.daemon.ops_port}", f"127.0.0.1:{free_port()}"))
        self.down.chmod(0o600)

    def cli(self, *args: str, code: int | None = 0, config: Path | None = None,
            **env: str) -> Result:
        """Run `storesync --config ... ARGS` in this process (the CLI's own main), as a script
        would see it: exit code, stdout, stderr. In-process keeps dozens of runs fast."""
        out, err = io.StringIO(), io.StringIO()
        argv = ["--config", str(config or self.daemon.config), *args]
        with (
            mock.patch.dict(os.environ, {**self.daemon.env, **env}),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            old_width, context.stdout.width = context.stdout.width, 200
            try:
                returncode = main(argv)
            except SystemExit as exc:  # argparse's usage errors
                returncode = int(exc.code or 0)
            finally:
                context.stdout.width = old_width
        result = Result(returncode, out.getvalue(), err.getvalue())
        if code is not None:
            assert result.returncode == code, result
        return result

    def json(self, *args: str, code: int = 0, **kw: Any) -> Any:
        return json.loads(self.cli(*args, "--json", code=code, **kw).stdout)

    def place(self, sandbox: Sandbox, lines: dict[str, int]) -> str:
        order_id = str(sandbox.buy(lines)["id"])
        wait_until(
            lambda: self.daemon.query(
                "SELECT 1 FROM orders WHERE channel = ? AND external_id = ?",
                (sandbox.name, order_id)),
            what=f"order {order_id} on {sandbox.name} to be stored",
        )
        return order_id


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("ops-cli"))
    yield w
    w.daemon.stop()
    w.shop.stop()
    w.market.stop()


def tracking_on(sandbox: Sandbox, number: str) -> list[dict]:
    return [s for s in sandbox.state()["shipments"] if s["tracking_number"] == number]


def test_ship_reaches_the_channel_and_says_what_went_wrong(world):
    shop_order = world.place(world.shop, {"MUG": 2, "CAP": 1})
    market_order = world.place(world.market, {"MUG": 1})
    assert shop_order == market_order  # both stores count from 1001

    # Ambiguous without --channel: exit 2, and both channels are named.
    result = world.cli("ship", shop_order, "--carrier", "UPS", "--tracking", "1ZCLI1", code=2)
    assert "several channels" in result.stderr
    assert "shop" in result.stderr and "market" in result.stderr and "--channel" in result.stderr

    answer = world.json("ship", f"#{shop_order}", "--channel", "shop", "--carrier", "UPS",
                        "--tracking", "1ZCLI1", "--url", "https://ups.example/1ZCLI1",
                        "--line", "MUG:1")
    assert answer["created"] is True and answer["channel"] == "shop"
    assert sum(answer["lines"].values()) == 1
    shipped = wait_until(lambda: tracking_on(world.shop, "1ZCLI1"), what="tracking on the shop")
    assert shipped[0]["carrier"] == "UPS" and shipped[0]["lines"][0]["quantity"] == 1
    assert not tracking_on(world.market, "1ZCLI1")

    # The same command again: recorded once, exit 0, and it says so.
    again = world.cli("ship", shop_order, "--channel", "shop", "--carrier", "UPS",
                      "--tracking", "1ZCLI1", "--line", "MUG:1")
    assert "already recorded" in again.stdout
    assert len(tracking_on(world.shop, "1ZCLI1")) == 1

    # Refused by the agent: exit 1 with its reason.
    unknown = world.cli("ship", "424242", "--carrier", "UPS", "--tracking", "X", code=1)
    assert "no order '424242'" in unknown.stderr
    too_many = world.cli("ship", market_order, "--channel", "market", "--carrier", "UPS",
                         "--tracking", "1ZCLI2", "--line", "MUG:5", code=1)
    assert "only 1 left to ship" in too_many.stderr
    # Wrong command line: exit 2, before anything is sent.
    bad_line = world.cli("ship", shop_order, "--carrier", "UPS", "--tracking", "X",
                         "--line", "MUG", code=2)
    assert "expected SKU:QTY" in bad_line.stderr
    world.cli("ship", shop_order, "--channel", "nope", "--carrier", "UPS", "--tracking", "X",
              code=2)
    world.cli("ship", shop_order, "--channel", "shop", "--carrier", "UPS", "--tracking", "X",
              code=2, OPS_TOKEN="not-the-token")
    # The agent down: exit 3, distinct from every refusal.
    down = world.cli("ship", shop_order, "--channel", "shop", "--carrier", "UPS",
                     "--tracking", "X", code=3, config=world.down)
    assert "cannot reach the agent" in down.stderr
    assert world.daemon.query("SELECT count(*) FROM shipments") == [(1,)]


def test_orders_lists_from_the_database_with_filters(world):
    order = world.place(world.shop, {"CAP": 2})
    world.cli("ship", order, "--channel", "shop", "--carrier", "DHL", "--tracking", "DHLORD1")
    listed = world.json("orders", "--channel", "shop")["orders"]
    row = next(r for r in listed if r["id"] == order)
    assert {"channel", "id", "name", "status", "created_at", "units", "shipped", "cancelled",
            "shipments"} <= set(row)
    assert row["status"] == "shipped" and row["shipped"] == 2
    assert row["shipments"][0]["tracking_number"] == "DHLORD1"
    assert all(r["channel"] == "shop" for r in listed)
    open_only = world.json("orders", "--status", "open")["orders"]
    assert order not in {r["id"] for r in open_only if r["channel"] == "shop"}
    assert len(world.json("orders", "--limit", "1")["orders"]) == 1
    table = world.cli("orders", "--channel", "shop").stdout
    assert "DHLORD1" in table and "shipped" in table
    # It reads the file itself: the same answer with the agent unreachable.
    # (Compared on what cannot move meanwhile: the channel's own update of the order, once it
    # has the shipment, may arrive between the two reads.)
    def stable(rows: list[dict]) -> list[tuple]:
        return [(r["channel"], r["id"], r["units"], r["shipped"]) for r in rows]

    down = world.json("orders", "--channel", "shop", config=world.down)["orders"]
    assert stable(down) == stable(listed)
    world.cli("orders", "--channel", "nope", code=2)
    world.cli("orders", "--status", "lost", code=2)


def test_outbox_and_channels_show_dead_letters_and_a_retry_clears_them(world):
    assert world.json("outbox")["counts"]["dead"] == 0
    healthy = world.json("channels")
    assert healthy["agent_running"] is True
    assert set(healthy["channels"]) == {"shop", "market"}
    assert {"kind", "enabled", "state", "state_reason", "live", "last_poll_at",
            "last_webhook_at", "outbox", "listings", "orders", "warnings"} <= set(
        healthy["channels"]["shop"])
    wait_until(lambda: world.cli("channels", code=None).returncode == 0,
               what="every channel ok")

    # The market goes down while a shipment waits (an outage dead-letters nothing), then it
    # refuses the shipment itself (400): a dead letter.
    order = world.place(world.market, {"CAP": 1})
    world.market.faults(outage=True)
    world.cli("ship", order, "--channel", "market", "--carrier", "UPS", "--tracking", "1ZDEAD")
    wait_until(lambda: world.json("channels", code=None)["channels"]["market"]["state"]
               == "degraded", what="the market to be degraded by the outage")
    world.market.faults(outage=False, error_rate=1.0, error_status=400)
    dead = wait_until(
        lambda: [r for r in world.json("outbox", "--dead", code=None)["rows"]
                 if r["kind"] == "shipment"],
        what="the shipment to be a dead letter",
    )
    row = dead[0]
    assert row["state"] == "dead" and row["channel"] == "market"
    assert row["value"]["tracking_number"] == "1ZDEAD"
    listing = world.cli("outbox", "--dead", code=1).stdout
    assert "1ZDEAD" in listing and "storesync outbox --retry" in listing
    assert world.json("outbox", "--channel", "shop")["counts"]["dead"] == 0  # exit 0: scoped
    wait_until(lambda: world.json("channels", code=None)["channels"]["market"]["state"]
               == "degraded", what="the market to be degraded")
    table = world.cli("channels", code=1).stdout
    assert "degraded" in table

    # Retrying a row that is not dead is refused (1); an unknown row is a usage error (2).
    world.cli("outbox", "--retry", "999999", code=2)
    world.market.faults(error_rate=0.0)
    answer = world.json("outbox", "--retry", str(row["id"]))
    assert answer["outcome"] == "retried"
    wait_until(lambda: tracking_on(world.market, "1ZDEAD"), what="the retried shipment")
    again = world.cli("outbox", "--retry", str(row["id"]), code=1)
    assert "not retried" in again.stderr
    world.cli("outbox", "--retry", str(row["id"]), code=3, config=world.down)

    # Other dead letters (stock pushes during the outage) still make outbox and channels say 1.
    for other in world.json("outbox", "--dead", code=None)["rows"]:
        world.cli("outbox", "--retry", str(other["id"]), code=None)
    wait_until(lambda: world.cli("outbox", code=None).returncode == 0, what="no dead letters")
    wait_until(lambda: world.cli("channels", code=None).returncode == 0,
               what="every channel ok again")


def test_channels_without_the_agent_shows_recorded_states_and_exits_3(world):
    result = world.cli("channels", "--json", code=3, config=world.down)
    document = json.loads(result.stdout)
    assert document["agent_running"] is False
    assert document["channels"]["shop"]["live"] is False
    assert "cannot reach the agent" in result.stderr
    assert "(recorded)" in world.cli("channels", code=3, config=world.down).stdout


def test_the_real_processes_exit_with_the_same_codes(world):
    def run(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent.cli", "--config", str(config), *args],
            cwd=REPO, env={**world.daemon.env, "COLUMNS": "200"}, capture_output=True,
            text=True, timeout=60,
        )

    orders = run("orders", "--json", config=world.daemon.config)
    assert orders.returncode == 0 and json.loads(orders.stdout)["orders"]
    assert run("ship", "1001", "--carrier", "UPS", "--tracking", "T", "--line", "X:0",
               config=world.daemon.config).returncode == 2
    assert run("outbox", "--retry", "1", config=world.down).returncode == 3
