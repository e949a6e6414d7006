"""The shipments drop folder, as a 3PL uses it: real daemon, real sandbox, real files, real kills.

Each file must be applied exactly once: a good one lands in done/ with its shipments on the
channel, a bad one in failed/ beside an .error naming its lines, with nothing applied; the same
file twice, or a daemon killed mid-way, neither loses nor doubles a shipment.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.runtime.harness import Daemon, Sandbox, wait_until

SKUS = {"MUG": 50, "CAP": 50, "TEE": 50}

DROP_TOML = """
[shipments]
drop_folder = "drop"
scan_interval = "100ms"
settle_time = "0s"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drop")
    shop = Sandbox(tmp, "shop")
    shop.seed({sku: 0 for sku in SKUS})
    daemon = Daemon(tmp, [shop], skus=SKUS, extra_toml=DROP_TOML)
    daemon.start()
    shop.send_webhooks_to(f"{daemon.webhooks}/webhooks/shop")
    for sku, qty in SKUS.items():
        daemon.set_stock(sku, qty)
    wait_until(lambda: daemon.converged(shop, list(SKUS)), what="stock on the sandbox")
    yield shop, daemon, tmp / "drop"
    daemon.stop()
    shop.stop()


def place(shop: Sandbox, daemon: Daemon, lines: dict[str, int]) -> str:
    """A shopper buys on the channel; wait until the agent stored the order."""
    order_id = str(shop.buy(lines)["id"])
    wait_until(
        lambda: daemon.query("SELECT 1 FROM orders WHERE channel = 'shop' AND external_id = ?",
                             (order_id,)),
        what=f"order {order_id} to be stored",
    )
    return order_id


def drop(folder: Path, name: str, text: str) -> None:
    """Write as a shipping tool should: a .tmp file, then a rename to .csv."""
    tmp = folder / (name + ".tmp")
    tmp.write_text(text)
    os.rename(tmp, folder / name)


def filed(folder: Path, name: str) -> str:
    """Wait until `name` left the drop folder and processing/; 'done' or 'failed'."""
    def where() -> str | None:
        for sub in ("done", "failed"):
            if (folder / sub / name).exists() and not (folder / name).exists() \
                    and not (folder / "processing" / name).exists():
                return sub
        return None
    return wait_until(where, what=f"{name} to be filed")


def channel_shipments(shop: Sandbox, tracking: str) -> list[dict]:
    return [s for s in shop.state()["shipments"] if s["tracking_number"] == tracking]


def stored_shipments(daemon: Daemon, tracking: str) -> int:
    return daemon.query("SELECT count(*) FROM shipments WHERE tracking_number = ?",
                        (tracking,))[0][0]


def test_a_good_file_lands_in_done_and_its_shipments_on_the_channel(world):
    shop, daemon, folder = world
    whole = place(shop, daemon, {"MUG": 2})
    split = place(shop, daemon, {"CAP": 3, "TEE": 1})
    # Aliased headers (order_number, tracking, quantity) in another order and case; one
    # package spans two lines (same order and tracking), another ships a whole order.
    drop(folder, "good.csv",
         "Order Number,Carrier,Tracking,SKU,Quantity,Tracking URL\n"
         f"{whole},UPS,1ZGOOD1,,,https://ups.example/1ZGOOD1\n"
         f"#{split},DHL,DHLGOOD2,CAP,2,\n"
         f"{split},DHL,DHLGOOD2,TEE,1,\n")
    assert filed(folder, "good.csv") == "done"
    package = wait_until(lambda: channel_shipments(shop, "DHLGOOD2"), what="DHL on the channel")
    assert {(ln["quantity"]) for ln in package[0]["lines"]} == {2, 1}
    ups = wait_until(lambda: channel_shipments(shop, "1ZGOOD1"), what="UPS on the channel")
    assert ups[0]["carrier"] == "UPS" and ups[0]["tracking_url"].endswith("1ZGOOD1")
    order = daemon.query("SELECT status FROM orders WHERE external_id = ?", (split,))
    assert order == [("partially_shipped",)]  # one CAP is still to ship
    assert daemon.query("SELECT name, shipments FROM shipment_files") == [("good.csv", 2)]


def test_a_bad_file_is_rejected_whole_with_an_error_naming_each_line(world):
    shop, daemon, folder = world
    order = place(shop, daemon, {"MUG": 1})
    drop(folder, "bad.csv",
         "order_id,carrier,tracking_number,sku,qty\n"
         f"{order},UPS,1ZBAD1,MUG,1\n"      # line 2: fine on its own
         "99999,UPS,1ZBAD2,MUG,1\n"          # line 3: no such order
         f"{order},UPS,1ZBAD3,NOPE,1\n"      # line 4: SKU not on the order
         f"{order},UPS,1ZBAD4,MUG,two\n")    # line 5: not a number
    assert filed(folder, "bad.csv") == "failed"
    report = (folder / "failed" / "bad.csv.error").read_text()
    assert "line 5: bad quantity for MUG" in report
    # Parse errors are reported first (nothing reaches the store); fix them and the order
    # and SKU problems are named in the same way:
    drop(folder, "bad2.csv",
         "order_id,carrier,tracking_number,sku,qty\n"
         f"{order},UPS,1ZBAD1,MUG,1\n"
         "99999,UPS,1ZBAD2,MUG,1\n"
         f"{order},UPS,1ZBAD3,NOPE,1\n")
    assert filed(folder, "bad2.csv") == "failed"
    report = (folder / "failed" / "bad2.csv.error").read_text()
    assert "line 3: no order '99999'" in report
    assert "line 4: order " in report and "'NOPE'" in report
    assert "nothing from this file was applied" in report
    # All or nothing: the good line 2 was not applied either.
    assert stored_shipments(daemon, "1ZBAD1") == 0
    assert not channel_shipments(shop, "1ZBAD1")
    missing = "order_id,carrier,sku,qty\n1,UPS,MUG,1\n"
    drop(folder, "nocolumn.csv", missing)
    assert filed(folder, "nocolumn.csv") == "failed"
    report = (folder / "failed" / "nocolumn.csv.error").read_text()
    assert "line 1: missing column tracking" in report
    # Ops see the rejected files without opening the folder: in /status and `storesync status`.
    def last_scan() -> dict | None:
        document = daemon.status()["shipments_folder"]
        last = document["last_file"] or {}
        return document if last.get("name") == "nocolumn.csv" else None

    document = wait_until(last_scan, what="the drop folder's last file in /status")
    assert document["last_file"]["result"] == "failed", document
    assert document["failed"] == 3 and document["waiting"] == 0 and document["stuck"] == []
    printed = daemon.cli("status").stdout
    assert "0 waiting, 0 processing, 3 in failed/" in printed, printed


def test_the_same_file_twice_is_applied_once(world):
    shop, daemon, folder = world
    order = place(shop, daemon, {"TEE": 1})
    # No tracking-number dedupe can save this one: the engine would record a second package.
    text = f"order_id,carrier,tracking_number\n{order},USPS,9400DUP\n"
    drop(folder, "daily.csv", text)
    assert filed(folder, "daily.csv") == "done"
    wait_until(lambda: channel_shipments(shop, "9400DUP"), what="the shipment on the channel")
    drop(folder, "daily.csv", text)  # the 3PL uploads the same export again
    wait_until(lambda: (folder / "done" / "daily.1.csv").exists(), what="the copy filed")
    note = (folder / "done" / "daily.1.csv.duplicate").read_text()
    assert "same content" in note and "daily.csv" in note
    assert stored_shipments(daemon, "9400DUP") == 1
    assert daemon.query("SELECT count(*) FROM outbox WHERE kind = 'shipment' "
                        "AND value LIKE '%9400DUP%'") == [(1,)]


def test_a_file_still_being_written_is_left_alone(world):
    shop, daemon, folder = world
    order = place(shop, daemon, {"CAP": 1})
    partial = folder / "slow.csv.tmp"
    partial.write_text(f"order_id,carrier,tracking_number\n{order},UPS,1ZSLOW\n")
    # A later file being filed proves a scan ran past the .tmp one.
    drop(folder, "marker.csv", "order_id,carrier,tracking_number\n")
    assert filed(folder, "marker.csv") == "failed"
    assert partial.exists() and stored_shipments(daemon, "1ZSLOW") == 0
    os.rename(partial, folder / "slow.csv")
    assert filed(folder, "slow.csv") == "done"
    assert stored_shipments(daemon, "1ZSLOW") == 1


def test_a_killed_daemon_neither_loses_nor_doubles_a_file(world):
    shop, daemon, folder = world
    first, second, third = (place(shop, daemon, {"MUG": 1}) for _ in range(3))

    def kill_and_restart(before_start: Callable[[], object] = lambda: None) -> None:
        assert daemon.process is not None
        daemon.process.signal(signal.SIGKILL)
        assert daemon.process.stop() == -signal.SIGKILL  # reaped, its log closed
        before_start()
        daemon.start()

    # 1. Killed at a moment we do not choose, right after the file lands: applied once.
    drop(folder, "crash1.csv", f"order_id,carrier,tracking_number\n{first},UPS,1ZKILL1\n")
    kill_and_restart()
    assert filed(folder, "crash1.csv") == "done"
    assert stored_shipments(daemon, "1ZKILL1") == 1

    # 2. Killed after the claim, before the commit: the file waits in processing/.
    claimed = f"order_id,carrier,tracking_number\n{second},UPS,1ZKILL2\n"
    kill_and_restart(lambda: (folder / "processing" / "crash2.csv").write_text(claimed))
    assert filed(folder, "crash2.csv") == "done"
    assert stored_shipments(daemon, "1ZKILL2") == 1

    # 3. Killed after the commit, before the move: the file is back in processing/ with its
    #    digest committed. It is moved on, not applied again, and not called a duplicate.
    drop(folder, "crash3.csv", f"order_id,carrier,tracking_number\n{third},UPS,1ZKILL3\n")
    assert filed(folder, "crash3.csv") == "done"
    kill_and_restart(lambda: os.rename(folder / "done" / "crash3.csv",
                                       folder / "processing" / "crash3.csv"))
    assert filed(folder, "crash3.csv") == "done"
    assert not (folder / "done" / "crash3.csv.duplicate").exists()
    for tracking in ("1ZKILL1", "1ZKILL2", "1ZKILL3"):
        assert stored_shipments(daemon, tracking) == 1
        wait_until(lambda t=tracking: len(channel_shipments(shop, t)) == 1,
                   what=f"{tracking} once on the channel")
