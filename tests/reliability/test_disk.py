"""Disk trouble: the database's filesystem fills up while orders and webhooks keep coming; the
agent answers 503, says why in /status, loses nothing acknowledged, and recovers on its own.

Shopify (which retries a refused delivery for 48 hours; its schedule runs 60 times faster here)
and WooCommerce (which never retries, so storesync's poll catches up) sandboxes run in this
process with the real agent beside them; shoppers keep buying throughout. Two ways to take the
space away, each against the same checks:

- a real full disk: the database on a small tmpfs, filled with a filler file, later deleted.
  It needs `mount`, which CI containers may refuse: then that variant is skipped, saying so;
- always, without privileges: the agent's file-size limit (RLIMIT_FSIZE, set on the running
  process with prlimit) lowered to the write-ahead log's current size, so every write that
  grows a database file fails in the kernel (EFBIG, "disk I/O error" to SQLite), later raised.

While the space is gone, every refused delivery gets 503 (never a 500 or a dropped
connection), /status says the store is not writable and why, /readyz says not ready, and the
agent keeps running. Once space returns, the agent takes writes again without a restart, every
delivery the channel got a 2xx for is in the inbox and its order stored once, the deliveries
refused with 503 were retried and stored, and every channel converges.

A read-only remount (`mount -o remount,ro`) is not tried: Linux refuses it ("mount point is
busy") while the agent holds the database open for writing, which it always does.
CI and the full run differ only in how long the disk stays full (4 s; 20 s).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import resource
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.demo.traffic import TrafficSettings
from tests.reliability.crash_world import CrashWorld, crash_settings
from tests.reliability.scale import seconds

KINDS = ("shopify", "woocommerce")
SKUS = [f"DISK-{n:02d}" for n in range(8)]
STOCK = 300
RATE = 4.0  # orders per second: webhooks arrive while the disk is full
TMPFS_SIZE = "16m"  # room for the database and its WAL; the filler takes the rest
# How long the disk stays full once the agent noticed; Shopify keeps retrying far longer.
FULL_S = seconds(ci=4, full=20)
# The agent notices at the next write: a delivery (RATE a second) or its heartbeat (every 10 s).
NOTICE_S = 30.0
# Space back: the next write works, or the heartbeat's (every 10 s).
RECOVER_S = 30.0
# Afterwards: WooCommerce's missed orders by its 5 s poll, Shopify's by its retries or its poll,
# then the stock pushes.
CONVERGE_S = 60.0
# Shopify retries a refused delivery after 1, 2, 4, 8... minutes (19 times over 48 hours); its
# sandbox here runs that schedule 60 times faster, so a minute of the schedule is a second.
SHOPIFY_RETRY_SPEED = 60.0
# Until the refused deliveries' retries are all answered: their schedule past the outage.
RETRIES_S = seconds(ci=40, full=90)


class TmpfsFull:
    """The database on a small tmpfs, filled to the last byte by a filler file."""

    reason = "full"

    def __init__(self, root: Path) -> None:
        self.mount = root / "disk"
        self.mount.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs",
             str(self.mount)],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                        "the file-size-limit variant covers a full disk without mounting")
        self.database = self.mount / "storesync.db"
        self.filler = self.mount / "filler"

    def take(self, agent_pid: int) -> None:
        """Write the filler until the filesystem says no more."""
        chunk = b"\0" * (1 << 20)
        with open(self.filler, "wb", buffering=0) as out:
            try:
                while True:
                    out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        # The last partial chunk: fill the remaining pages too.
        with open(self.filler, "ab", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc

    def give_back(self, agent_pid: int) -> None:
        """Delete the filler."""
        self.filler.unlink()

    def close(self) -> None:
        """Unmount (lazily: the agent may still be closing its files)."""
        subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, check=False)


class FileSizeLimit:
    """The database anywhere; the agent's RLIMIT_FSIZE lowered below its files' next write."""

    reason = "disk"

    def __init__(self, root: Path) -> None:
        folder = root / "db"
        folder.mkdir()
        self.database = folder / "storesync.db"
        self._hard = resource.RLIM_INFINITY

    def take(self, agent_pid: int) -> None:
        """Cap the agent's files at the WAL's size now: the next append fails with EFBIG."""
        wal = self.database.with_name(self.database.name + "-wal")
        limit = max(wal.stat().st_size, 1)
        self._hard = resource.prlimit(agent_pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(agent_pid, resource.RLIMIT_FSIZE, (limit, self._hard))

    def give_back(self, agent_pid: int) -> None:
        """Lift the cap."""
        resource.prlimit(agent_pid, resource.RLIMIT_FSIZE, (self._hard, self._hard))

    def close(self) -> None:
        """Nothing to undo."""


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def piped_log(path: Path) -> Iterator[Path]:
    """A FIFO to hand the agent as its log, copied into `path` by a thread: the agent's file-size
    limit would otherwise also refuse its log lines (a pipe has no size)."""
    fifo = path.with_suffix(".fifo")
    os.mkfifo(fifo)

    def copy() -> None:
        with open(fifo, "rb") as source, open(path, "ab") as target:
            while block := source.read1(65536):
                target.write(block)
                target.flush()

    thread = threading.Thread(target=copy, name="agent-log", daemon=True)
    thread.start()
    yield fifo


@pytest.mark.parametrize("starver", [TmpfsFull, FileSizeLimit], ids=["tmpfs", "fsize"])
async def test_full_disk_answers_503_and_recovers(tmp_path: Path, starver: Any) -> None:
    """Space gone under traffic: 503s, /status says why, nothing acknowledged lost, recovery."""
    space = starver(tmp_path)
    world = CrashWorld(
        tmp_path, crash_settings(SKUS, STOCK, seed=7, kinds=KINDS),
        TrafficSettings(rate=RATE, seed=7, ship_share=0.0),
    )
    started = time.monotonic()
    try:
        await world.start(database=space.database)
        log_file = world.world.dir / "agent.log"
        if isinstance(space, FileSizeLimit):
            # The same agent again, its log through a pipe (see piped_log).
            world.world.agent.stop(30)  # type: ignore[union-attr]
            log_file = tmp_path / "agent-piped.log"
            world.spawn(log=next(piped_log(log_file)))
            await world.wait_ready()
        agent = world.world.agent
        assert agent is not None
        world.world.channels["shopify"].sandbox.configure_webhooks(speed=SHOPIFY_RETRY_SPEED)
        stop_shopping = asyncio.Event()
        shopping = asyncio.create_task(world.shop(stop_shopping))
        await world.world.wait_for(lambda: world.acks.acks, timeout=NOTICE_S,
                                   what="a first acknowledged delivery")

        await asyncio.to_thread(space.take, agent.proc.pid)
        full_at = time.monotonic()
        refused = world.acks.refused

        async def refusing() -> dict[str, Any] | None:
            status = await world.world.status()
            store = status["store"]
            return status if (not store["writable"] and refused.get("shopify")) else None

        status = await world.world.wait_for(
            refusing, timeout=NOTICE_S,
            what="a refused delivery and /status saying the store is not writable")
        noticed_s = time.monotonic() - full_at
        reason = status["store"]["error"] or ""
        assert space.reason in reason.lower(), f"/status does not say why: {status['store']}"
        readyz = await world.world._http.get(f"{world.world.ops_url}/readyz")  # noqa: SLF001
        assert readyz.status_code == 503, readyz.text
        await asyncio.sleep(FULL_S)  # orders keep coming while the disk stays full
        assert agent.running, "the agent died on a full disk:\n" + agent.log()[-3000:]

        await asyncio.to_thread(space.give_back, agent.proc.pid)
        freed_at = time.monotonic()

        async def writable() -> bool:
            status = await world.world.status()
            return bool(status["store"]["writable"])

        await world.world.wait_for(writable, timeout=RECOVER_S, what="the store to take writes")
        await world.wait_ready(timeout=RECOVER_S)
        recovered_s = time.monotonic() - freed_at
        stop_shopping.set()
        await shopping
        assert not world.traffic.errors, world.traffic.errors[:5]

        try:
            report = await world.world.wait_for(
                world.converged, timeout=CONVERGE_S, what="every channel to converge", every=0.5)
        except TimeoutError as exc:
            raise AssertionError(f"not converged: {world.last_report}") from exc
        # Shopify's retries of the refused deliveries may come after the poll caught up.
        for channel in world.world.channels.values():
            sender = channel.sandbox.sender
            assert await sender.flush(RETRIES_S), (
                f"{channel.name} still has {sender.pending} deliveries to send")
        # Every answer the channels got other than 2xx was a 503: no 500, no dropped connection.
        statuses = {status for by in refused.values() for status in by}
        assert statuses == {503}, refused
        acks = world.acks.snapshot()
        assert world.lost_acks(acks) == []
        retried = {(a.channel, a.key) for a in acks} & world.acks.refused_keys
        assert retried, "no refused delivery was retried and stored"
        rows = world.order_rows()
        assert all(n == 1 for n in rows.values())
        assert len(rows) == len(world.ledger.sales)
        check = await asyncio.to_thread(world.db_check)
        assert check["ok"], check
        assert agent.running
        # log_format = "json": a failing write must not leave a bare traceback in the log.
        not_json = [line for line in log_file.read_text(errors="replace").splitlines()
                    if line.strip() and not _is_json(line)]
        assert not not_json, "the agent logged lines that are not JSON:\n" + "\n".join(
            not_json[:20])
        print(
            f"disk ({starver.__name__}): noticed in {noticed_s:.1f} s ({reason!r}); "
            f"{sum(sum(by.values()) for by in refused.values())} deliveries answered 503, "
            f"{len(retried)} of them retried and stored; recovered {recovered_s:.1f} s after "
            f"space returned; {len(rows)} orders, {len(acks)} acknowledged deliveries checked, "
            f"{report['pushes_out']:.0f} pushes; total {time.monotonic() - started:.1f} s"
        )
    finally:
        await world.stop()
        space.close()
