"""`storesync demo`: every channel's sandbox, shoppers, a warehouse and the real agent, on this
machine, with a live line and a convergence report. Exits 0 only when every channel converged."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.text import Text

from agent.commands.context import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, CommandFailed, stderr, stdout
from agent.demo.run import DemoOptions, DemoRun, write_report
from agent.demo.traffic import TrafficSettings
from agent.demo.world import FAULT_PROFILES, WorldSettings, available_kinds, demo_tuning


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the demo command."""
    kinds = available_kinds()
    parser = sub.add_parser(
        "demo",
        parents=[common],
        help="run the agent against sandboxes of every channel, with shoppers and a warehouse",
        description="Start a sandbox of every channel on loopback, the agent beside them, "
        "simulated shoppers and a warehouse; show a live line; at the end check that every "
        "channel shows the published number for every SKU and has every shipment. Exit 0 "
        "only when all converged.",
    )
    parser.add_argument(
        "--channels", default=",".join(kinds), metavar="LIST",
        help=f"comma-separated channel kinds (default: {','.join(kinds)})",
    )
    parser.add_argument("--skus", type=int, default=50, metavar="N", help="catalog size (50)")
    parser.add_argument(
        "--stock", type=int, default=40, metavar="UNITS", help="starting units per SKU (40)"
    )
    parser.add_argument(
        "--rate", type=float, default=2.0, metavar="ORDERS_PER_S",
        help="orders per second over all channels (2)",
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, metavar="S",
        help="seconds of shopping before the convergence check (60; Ctrl-C ends it early)",
    )
    parser.add_argument(
        "--faults", choices=sorted(FAULT_PROFILES), default="none",
        help="faults every sandbox injects: lost and duplicated webhooks, 5xx, resets (none)",
    )
    parser.add_argument(
        "--dir", type=Path, metavar="DIR",
        help="keep the config, database and logs here (default: a temporary folder)",
    )
    parser.add_argument("--seed", type=int, default=2026, help="random seed (2026)")
    parser.set_defaults(func=run)


def _settings(args: argparse.Namespace, directory: Path) -> DemoOptions:
    known = available_kinds()
    kinds = [k.strip() for k in args.channels.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in known]
    if unknown or not kinds:
        raise CommandFailed(
            f"--channels: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}",
            EXIT_CONFIG,
        )
    if args.skus < 1 or args.stock < 0 or args.rate <= 0 or args.duration <= 0:
        raise CommandFailed(
            "--skus must be at least 1, --stock not negative, --rate and --duration positive",
            EXIT_CONFIG,
        )
    sandbox_options, channel_options = demo_tuning(kinds)
    world = WorldSettings(
        kinds=kinds,
        skus=[f"DEMO-{n:04d}" for n in range(1, args.skus + 1)],
        stock=args.stock,
        seed=args.seed,
        faults=args.faults,
        sandbox_options=sandbox_options,
        channel_options=channel_options,
    )
    traffic = TrafficSettings(rate=args.rate, seed=args.seed)
    return DemoOptions(directory, world, traffic, args.duration)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every channel converged."""
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        if any(args.dir.glob("storesync.db*")):
            raise CommandFailed(f"--dir {args.dir} already holds a demo database; use an "
                                "empty folder", EXIT_CONFIG)
        return _run(args, args.dir)
    with tempfile.TemporaryDirectory(prefix="storesync-demo-") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, directory: Path) -> int:
    options = _settings(args, directory)
    report = asyncio.run(_drive(options))
    path = write_report(directory, report)
    _print_summary(report)
    if args.dir is not None:
        stdout.print(f"report: {path}", markup=False)
    return EXIT_OK if report["converged"] else EXIT_FAILED


async def _drive(options: DemoOptions) -> dict[str, Any]:
    demo = DemoRun(options, lambda line: stdout.print(line, markup=False))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, demo.interrupted.set)
    live_task = asyncio.create_task(_live(demo))
    try:
        return await demo.run()
    finally:
        live_task.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _live(demo: DemoRun) -> None:
    """The live line: redrawn in place on a terminal, printed every 5 s otherwise."""
    while demo.watch is None:  # the world is still starting
        await asyncio.sleep(0.2)
    if sys.stdout.isatty():
        with Live(Text(""), console=stdout, refresh_per_second=4, transient=False) as live:
            while True:
                live.update(Text(await _line(demo)))
                await asyncio.sleep(0.5)
    while True:
        await asyncio.sleep(5)
        stdout.print(await _line(demo), markup=False)


async def _line(demo: DemoRun) -> str:
    try:
        return await demo.live_line()
    except Exception as exc:  # noqa: BLE001 - the agent may be busy or stopping
        return f"(agent not answering: {exc})"


def _print_summary(report: dict[str, Any]) -> None:
    orders, prop = report["orders"], report["propagation_ms"]
    stdout.print("", markup=False)
    stdout.print(
        f"{orders['placed']} orders placed ({orders['cancelled']} cancelled, "
        f"{orders['refused_out_of_stock']} checkouts refused for lack of stock), "
        f"{report['shipments']} shipped, {report['pushes_out']:.0f} pushes, "
        f"{report['oversold_units']} units oversold",
        markup=False,
    )
    stdout.print(
        f"propagation of webhook sales: p50 {prop['p50']} ms, p95 {prop['p95']} ms, "
        f"p99 {prop['p99']} ms over {prop['samples']} sales",
        markup=False,
    )
    polled = report["propagation_from_polled_channels_ms"]
    if polled["samples"]:
        stdout.print(
            f"propagation of sales on polled channels: p50 {polled['p50']} ms, "
            f"p99 {polled['p99']} ms over {polled['samples']} sales",
            markup=False,
        )
    for name, channel in report["channels"].items():
        ok = (channel["skus_matching"] == channel["skus"] and not channel["orders_missing"]
              and not channel["shipments_missing"])
        stdout.print(
            f"  {'converged' if ok else 'NOT CONVERGED':<14} {name:<12} state {channel['state']}, "
            f"{channel['skus_matching']}/{channel['skus']} SKUs match, "
            f"{channel['orders_placed']} orders, {channel['shipments_sent']} shipments",
            markup=False,
        )
        for miss in channel["mismatches"]:
            stderr.print(f"    {miss['sku']}: shows {miss['shown']}, published "
                         f"{miss['published']}, expected {miss['expected']}", markup=False)
        if channel["orders_missing"]:
            stderr.print(f"    orders not stored: {', '.join(channel['orders_missing'])}",
                         markup=False)
        if channel["shipments_missing"]:
            stderr.print(f"    shipments not on the channel: "
                         f"{', '.join(channel['shipments_missing'])}", markup=False)
    for error in report["errors"]:
        stderr.print(f"  error: {error}", markup=False)
    stdout.print("converged" if report["converged"] else "NOT converged", markup=False)
