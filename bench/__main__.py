"""`python -m bench`: the five measures on the sandboxes, as JSON on stdout and a table on stderr.

    python -m bench                 all five (about 10 minutes on 2 cores)
    python -m bench --quick         shorter runs, smaller catalogs (a smoke test)
    python -m bench --only oversell,idle

The older micro-benchmarks stay separate: `python -m bench.engine`, `python -m bench.ingest`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from collections.abc import Callable, Coroutine
from typing import Any

from rich.table import Table

from agent.processes import REPO
from bench import calls, idle, oversell, propagation, reconcile
from bench.report import emit, machine, progress

MEASURES: dict[str, Callable[..., Coroutine[Any, Any, dict[str, Any]]]] = {
    "propagation": propagation.measure,
    "calls": calls.measure,
    "oversell": oversell.measure,
    "reconcile": reconcile.measure,
    "idle": idle.measure,
}


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def _table(results: dict[str, Any]) -> Table:
    table = Table(title="storesync benchmarks (sandboxes on loopback)")
    for column in ("measure", "storesync", "baseline", "ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    results = {k: v for k, v in results.items() if "error" not in v}
    prop = results.get("propagation")
    if prop:
        for rate, row in prop.items():
            ms = row["all_channels_ms"]
            table.add_row(f"propagation at {rate}, p50 / p95 / p99",
                          f"{ms['p50']} / {ms['p95']} / {ms['p99']} ms", "", "")
    counted = results.get("calls")
    if counted:
        for name, row in counted.items():
            if isinstance(row, dict):
                table.add_row(f"API calls per changed number, {name}",
                              f"{row['calls_per_change']}",
                              f"{row['least_calls_per_change']} (batch {row['max_batch']})",
                              _ratio(row["calls_per_change"], row["least_calls_per_change"]))
    sale = results.get("oversell")
    if sale:
        table.add_row(f"units oversold, {sale['shoppers']} shoppers for {sale['units']}",
                      str(sale["storesync"]["oversold_units"]),
                      f"{sale['naive_15min']['oversold_units']} (15-min interval sync)", "")
    full = results.get("reconcile")
    if full:
        table.add_row(f"full reconcile, {full['full']['skus']:,} SKUs x "
                      f"{full['full']['channels']} channels",
                      f"{full['full']['wall_s']} s, peak {full['full']['agent_peak_rss_mib']} MiB",
                      f"{full['baseline']['wall_s']} s at {full['baseline']['skus']:,} SKUs",
                      f"{full['wall_ratio']}x for {full['catalog_ratio']}x SKUs")
    quiet = results.get("idle")
    if quiet:
        table.add_row("idle agent RSS / CPU", f"{quiet['agent_rss_mib']} MiB / "
                      f"{quiet['agent_cpu_percent']} %",
                      f"{quiet['floor_rss_mib']} MiB (bare Python + libraries)",
                      f"{quiet['rss_ratio']}x")
    return table


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.1f}x" if value and base else ""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--only", default=",".join(MEASURES),
                        help=f"comma-separated measures ({','.join(MEASURES)})")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MEASURES]
    if unknown:
        parser.error(f"unknown measure(s): {', '.join(unknown)}")
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name in chosen:
        started = time.monotonic()
        try:
            results[name] = asyncio.run(MEASURES[name](quick=args.quick))
        except Exception as exc:  # noqa: BLE001 - one measure failing keeps the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        timings[name] = round(time.monotonic() - started, 1)
        progress(f"{name} done in {timings[name]} s: {json.dumps(results[name])[:2000]}")
    report = {"machine": machine(), "commit": _commit(), "quick": args.quick,
              "seconds": timings, "results": results}
    emit(report, _table(results))


if __name__ == "__main__":
    main()
