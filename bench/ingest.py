"""Webhook ingest: deliveries acknowledged per second, each durably stored before its 200.

Run as `python -m bench.ingest [--quick]`. It starts a reference-channel sandbox and the real
`storesync run` on loopback, then 50 concurrent senders post signed order webhooks. It checks
every acknowledged delivery is in the inbox, and measures the same senders against a server that
acknowledges without storing anything (bench/floor_server.py), in the same run, as the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from rich.table import Table

from agent.processes import REPO, Child, child_env, free_port, wait_until
from bench.report import emit, machine, percentile_ms, progress

SENDERS = 50
SECRET = "bench-webhook-secret"


def order_body(n: int) -> bytes:
    """A realistic order payload (about 600 bytes)."""
    return json.dumps({
        "id": f"B{n}", "name": f"#B{n}", "status": "open",
        "created_at": "2026-11-01T10:00:00.000000Z", "updated_at": "2026-11-01T10:00:00.000000Z",
        "currency": "USD", "total": "42.00", "customer": "buyer@example.com",
        "lines": [{"id": str(i), "sku": f"SKU-{(n + i) % 200:03d}", "title": "A product",
                   "quantity": 1 + i, "shipped": 0, "cancelled": 0, "returned": 0}
                  for i in range(3)],
    }).encode()


def headers_for(n: int, body: bytes) -> dict[str, str]:
    """The reference channel's webhook headers, signed."""
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    return {"X-Reference-Topic": "order.created", "X-Reference-Delivery": f"bench-{n}",
            "X-Reference-Signature": base64.b64encode(digest).decode(),
            "Content-Type": "application/json"}


async def blast(url: str, first: int, count: int) -> tuple[list[float], int, float, list[int]]:
    """Post `count` deliveries from SENDERS concurrent senders; latencies, failures, wall, acked.

    The senders use aiohttp's client: httpx's per-request overhead would make the load
    generator, not the server, the bottleneck at this concurrency on two cores.
    """
    latencies: list[float] = []
    acked: list[int] = []
    failures = 0
    numbers = iter(range(first, first + count))
    prepared = [(n, order_body(n)) for n in range(first, first + count)]
    bodies = dict(prepared)

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for n in numbers:
            body = bodies[n]
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers_for(n, body)) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                failures += 1
                continue
            if ok:
                latencies.append(time.perf_counter() - started)
                acked.append(n)
            else:
                failures += 1

    connector = aiohttp.TCPConnector(limit=SENDERS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
        wall = time.perf_counter() - started
    return latencies, failures, wall, acked


def summarize(latencies: list[float], failures: int, wall: float) -> dict[str, Any]:
    """Throughput and latency figures of one blast."""
    return {
        "accepted": len(latencies),
        "failed": failures,
        "wall_s": round(wall, 3),
        "accepted_per_s": round(len(latencies) / wall, 1),
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
    }


def run_agent(folder: Path, count: int) -> dict[str, Any]:
    """The real agent: sandbox + storesync run, then the blast."""
    sandbox_port, webhook_port, ops_port = free_port(), free_port(), free_port()
    config = folder / "storesync.toml"
    config.write_text(f"""
[agent]
database = "storesync.db"
webhook_listen = "127.0.0.1:{webhook_port}"
ops_listen = "127.0.0.1:{ops_port}"
log_format = "json"
log_level = "warning"

[channels.shop]
kind = "reference"
api_url = "http://127.0.0.1:{sandbox_port}"
api_key = {{ env = "BENCH_KEY" }}
webhook_secret = {{ env = "BENCH_SECRET" }}
poll_interval = "1h"
""")
    env = child_env({"BENCH_KEY": "bench-key", "BENCH_SECRET": SECRET})
    sandbox = Child(["sandbox", "reference", "--port", str(sandbox_port), "--api-key",
                     "bench-key", "--webhook-secret", SECRET], folder / "sandbox.log", env)
    agent = Child(["--config", str(config), "run"], folder / "agent.log", env)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{ops_port}/readyz").status_code == 200,
                   timeout=60, what="the agent", tolerate=(httpx.HTTPError,))
        url = f"http://127.0.0.1:{webhook_port}/webhooks/shop"
        progress("agent: warming up")
        asyncio.run(blast(url, 10_000_000, 200))
        progress(f"agent: {count:,} deliveries from {SENDERS} senders")
        latencies, failures, wall, acked = asyncio.run(blast(url, 0, count))
        db = sqlite3.connect(f"file:{folder / 'storesync.db'}?mode=ro", uri=True)
        stored = {row[0] for row in db.execute("SELECT delivery_key FROM inbox")}
        db.close()
        missing = sum(1 for n in acked if f"bench-{n}" not in stored)
        result = summarize(latencies, failures, wall)
        result["acknowledged_but_missing"] = missing
        return result
    finally:
        agent.stop()
        sandbox.stop()


def run_floor(count: int) -> dict[str, Any]:
    """The same blast against a server that stores nothing."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.floor_server", str(port)], cwd=REPO,
                              env=child_env())
    try:
        url = f"http://127.0.0.1:{port}/webhooks/shop"
        wait_until(lambda: httpx.post(url, content=b"{}").status_code == 200, timeout=30,
                   what="the floor server", tolerate=(httpx.HTTPError,))
        asyncio.run(blast(url, 10_000_000, 200))
        progress(f"floor: {count:,} deliveries from {SENDERS} senders")
        latencies, failures, wall, _ = asyncio.run(blast(url, 0, count))
        return summarize(latencies, failures, wall)
    finally:
        server.terminate()
        server.wait(timeout=10)


def render(report: dict[str, Any]) -> Table:
    """The report as a table."""
    a, f, m = report["agent"], report["floor"], report["machine"]
    table = Table(
        title="storesync webhook ingest" + (" (quick)" if report["quick"] else ""),
        caption=f"{a['accepted']:,} signed deliveries, {SENDERS} concurrent senders, each "
        f"committed (synchronous=FULL) before its 200. {m['platform']}, Python {m['python']}, "
        f"{m['cpu_count']} CPUs, {m['date']}",
    )
    for column, justify in (("measure", "left"), ("agent", "right"), ("floor", "right"),
                            ("ratio", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_row("accepted/s", f"{a['accepted_per_s']:,.0f}", f"{f['accepted_per_s']:,.0f}",
                  f"{report['floor_vs_agent_throughput']:.2f}x")
    table.add_row("ack p50 ms", f"{a['p50_ms']:.1f}", f"{f['p50_ms']:.1f}",
                  f"{report['agent_vs_floor_p50']:.2f}x")
    table.add_row("ack p99 ms", f"{a['p99_ms']:.1f}", f"{f['p99_ms']:.1f}",
                  f"{report['agent_vs_floor_p99']:.2f}x")
    table.add_row("failed / missing", f"{a['failed']} / {a['acknowledged_but_missing']}",
                  f"{f['failed']}", "")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run both blasts and print the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.ingest",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 deliveries instead of 5,000")
    args = parser.parse_args(argv)
    count = 500 if args.quick else 5_000
    with tempfile.TemporaryDirectory(prefix="storesync-ingest-") as tmp:
        agent = run_agent(Path(tmp), count)
    floor = run_floor(count)
    report = {
        "benchmark": "storesync.ingest",
        "quick": args.quick,
        "machine": machine(),
        "senders": SENDERS,
        "agent": agent,
        "floor": floor,
        "floor_vs_agent_throughput": round(floor["accepted_per_s"] / agent["accepted_per_s"], 2),
        "agent_vs_floor_p50": round(agent["p50_ms"] / max(floor["p50_ms"], 1e-6), 2),
        "agent_vs_floor_p99": round(agent["p99_ms"] / max(floor["p99_ms"], 1e-6), 2),
    }
    emit(report, render(report))
    return 0 if agent["acknowledged_but_missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
