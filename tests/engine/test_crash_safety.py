"""Crash safety: SIGKILL a process applying orders, 20 times, and find the store whole each time.

The victim is tests/engine/order_stream.py. It prints `committed o{i}` only after the unit of work
for order i has returned, so every order it reported must survive the kill, exactly once, and the
store must pass `storesync db check` after every restart.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from agent.engine.orders import content_hash
from tests.engine.order_stream import (
    BUNDLE_COMPONENTS,
    INITIAL_STOCK,
    LOCATION,
    SKUS,
    channel_of,
    order_versions,
)

REPO = Path(__file__).resolve().parents[2]
STREAM = Path(__file__).with_name("order_stream.py")
KILLS = 20
DEADLINE_S = 30.0
CONFIG = """\
[agent]
database = "store.db"
[[locations]]
name = "main"
[channels.shop]
kind = "shopify"
shop = "demo.myshopify.com"
access_token = { env = "SHOP_TOKEN" }
[channels.woo]
kind = "woocommerce"
api_url = "http://127.0.0.1:9"
consumer_key = { env = "WOO_KEY" }
consumer_secret = { env = "WOO_SECRET" }
"""


def child_env() -> dict[str, str]:
    """The environment for the subprocesses: the repo importable, the config's secrets set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(SHOP_TOKEN="test", WOO_KEY="test", WOO_SECRET="test")
    return env


class Victim:
    """One run of the order stream, its stdout read line by line on a thread."""

    def __init__(self, db: Path, start: int, log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(STREAM), str(db), str(start)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=REPO,
            env=child_env(),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)  # end of file: the process is gone

    def next_line(self, deadline: float, waiting_for: str) -> str:
        """The next line of output, failing clearly if the child dies or stalls."""
        try:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            self.kill()
            raise AssertionError(f"the order stream stalled waiting for {waiting_for}"
                                 f"{self.diagnostics()}") from None
        if line is None:
            self.proc.wait()
            raise AssertionError(
                f"the order stream exited ({self.proc.returncode}) waiting for {waiting_for}"
                f"{self.diagnostics()}"
            )
        self.seen.append(line)
        if line.startswith("bad "):
            self.kill()
            raise AssertionError(f"the order stream saw the impossible: {line}{self.diagnostics()}")
        return line

    def wait_committed(self, count: int, deadline: float) -> None:
        """Block until `ready` and then `count` more `committed` lines have been printed."""
        while self.next_line(deadline, "ready") != "ready":
            pass
        got = 0
        while got < count:
            if self.next_line(deadline, f"{count} committed orders").startswith("committed "):
                got += 1

    def kill(self) -> None:
        """SIGKILL the child and collect everything it printed before it died."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE_S)
        self._reader.join(timeout=DEADLINE_S)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()

    def diagnostics(self) -> str:
        """The tail of what the child printed, for a failure message."""
        tail = "\n".join(self.seen[-10:])
        try:
            err = self.log.read_text(errors="replace")[-3000:]
        except OSError:
            err = ""
        return f"\n--- last stdout lines:\n{tail}\n--- stderr:\n{err}"

    def committed_indexes(self) -> list[int]:
        """The order indexes this run reported committed."""
        return [int(line.split()[1][1:]) for line in self.seen if line.startswith("committed ")]

    def sent_indexes(self) -> list[int]:
        """The new-order indexes this run got through, committed now or found already there."""
        return [
            int(line.split()[1][1:])
            for line in self.seen
            if line.startswith(("committed ", "present "))
        ]


def db_check(config: Path) -> dict[str, object]:
    """Run `storesync db check --json` and return its verdict, asserting it passed."""
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(config), "db", "check", "--json"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 0, f"db check failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    verdict = json.loads(done.stdout)
    assert verdict["ok"] is True, verdict
    return verdict


def integrity(db: Path) -> str:
    """SQLite's own verdict on the file, through a connection of our own."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_sigkill_while_applying_orders_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """20 SIGKILLs at random moments: db check passes, reported orders are there exactly once."""
    db = tmp_path / "store.db"
    config = tmp_path / "storesync.toml"
    config.write_text(CONFIG)
    rng = random.Random(1234)
    reported: list[int] = []
    start = 0
    highest_started = -1
    unreported = 0  # orders a kill caught between their commit and the print saying so

    for kill in range(KILLS):
        # Now and then kill straight after `ready`, while the catalog is being brought in.
        wanted = 0 if rng.random() < 0.15 else rng.randint(5, 60)
        victim = Victim(db, start, tmp_path / f"stream-{kill}.stderr")
        try:
            victim.wait_committed(wanted, time.monotonic() + DEADLINE_S)
            # A little jitter so the kill lands anywhere in the next unit of work, not always
            # just after a print.
            time.sleep(rng.uniform(0, 0.01))
        finally:
            victim.kill()
        assert victim.proc.returncode == -signal.SIGKILL, victim.diagnostics()
        committed = victim.committed_indexes()
        sent = victim.sent_indexes()
        assert len(committed) >= wanted
        # The stream numbers orders in sequence; only the first after a restart may be `present`
        # (committed by the run before, which was killed before it could say so).
        assert sent == list(range(start, start + len(sent))), victim.diagnostics()
        assert set(sent) - set(committed) <= {start}, victim.diagnostics()
        reported += committed
        unreported += len(sent) - len(committed)
        # The child may have committed one more order and been killed before saying so.
        highest_started = max(highest_started, start + len(sent))
        start += len(sent)

        # The product's own check first, so it is what finds the file as the kill left it (a
        # plain connection closing last would checkpoint the WAL away first).
        db_check(config)
        assert integrity(db) == "ok", f"after kill {kill}"

    assert len(reported) == len(set(reported))
    assert len(reported) > KILLS, "the stream barely ran; the kills tested nothing"
    check_final_contents(db, reported, highest_started)
    print(f"{KILLS} kills, {len(reported)} orders reported committed, "
          f"{unreported} committed but unreported at a kill")


def check_final_contents(db: Path, reported: list[int], highest_started: int) -> None:
    """Every reported order once, no phantoms, lines as generated, each shipment counted once."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT channel, external_id, count(*) FROM orders GROUP BY channel, external_id"
        ).fetchall()
        stored: dict[int, str] = {}
        for channel, external_id, count in rows:
            assert count == 1
            index = int(external_id[1:])
            assert channel == channel_of(index), external_id
            stored[index] = external_id
        missing = set(reported) - set(stored)
        assert not missing, f"orders reported committed but not stored: {sorted(missing)[:20]}"
        # The stream only ever creates orders in sequence, so the store holds o0..oN with N the
        # highest reported order, or the one after it that was committed but never reported.
        assert sorted(stored) == list(range(len(stored)))
        assert max(reported) <= len(stored) - 1 <= highest_started

        lines: dict[str, list[tuple[str, str, int, int]]] = {}
        for external_id, line_id, sku, qty, shipped in conn.execute(
            "SELECT external_id, line_id, channel_sku, qty, qty_shipped FROM order_lines "
            "ORDER BY external_id, line_id"
        ):
            lines.setdefault(external_id, []).append((line_id, sku, qty, shipped))
        hashes = dict(conn.execute("SELECT external_id, content_hash FROM orders"))
        expected_shipped: Counter[str] = Counter()
        for index, external_id in stored.items():
            versions = order_versions(index)
            want = [(ln.line_id, ln.sku, ln.quantity) for ln in versions[0].lines]
            got = lines.get(external_id, [])
            assert [row[:3] for row in got] == want, external_id
            # The stored version is one the channel really sent, not a mix of two.
            assert hashes[external_id] in {content_hash(v) for v in versions}, external_id
            for _line_id, sku, _qty, shipped in got:
                for comp, per_unit in (BUNDLE_COMPONENTS if sku not in SKUS else {sku: 1}).items():
                    expected_shipped[comp] += shipped * per_unit

        # Each channel-side shipment moved stock exactly once, however often it was re-sent.
        moved = Counter(
            dict(conn.execute(
                "SELECT sku, -sum(delta) FROM movements WHERE reason = 'shipped' GROUP BY sku"
            ))
        )
        assert +moved == +expected_shipped
        # The first count ran exactly once, whatever kill landed in the catalog set-up.
        counts = conn.execute(
            "SELECT sku, count(*), sum(delta) FROM movements WHERE reason = 'count' GROUP BY sku"
        ).fetchall()
        assert sorted(counts) == [(sku, 1, INITIAL_STOCK) for sku in SKUS]
        assert {loc for (loc,) in conn.execute("SELECT DISTINCT location FROM stock")} == {
            LOCATION
        }
    finally:
        conn.close()
