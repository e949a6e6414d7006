"""`storesync check-config [--online]`: validate a config file and summarise it, or list every
error; with --online, also try each channel's credentials and walk its catalog."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from agent.commands.context import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    add_json_flag,
    emit,
    stderr,
    stdout,
)
from agent.config import Config, ConfigError, default_config_path, format_summary, load_config
from agent.store.queries import master_skus
from agent.sync.probe import SHOWN, ChannelProbe, probe_channel


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the check-config command."""
    parser = sub.add_parser(
        "check-config",
        parents=[common],
        help="validate a config file (--online: and try every channel)",
        description="Validate a config file. Exit 0 with a summary, or 2 listing every error "
        "as `file: key.path: message`. With --online, also call each enabled channel: check "
        "its credentials and that orders and listings can be read, walk its catalog and list "
        "the SKUs that match no master SKU; exit 1 when a channel fails a check. Nothing is "
        "written to the channels or the database.",
    )
    parser.add_argument("path", nargs="?", help="the config file (same as --config)")
    parser.add_argument("--online", action="store_true",
                        help="call every enabled channel's API (read-only)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate and print the summary or the errors; probe the channels under --online."""
    path = default_config_path(args.path or getattr(args, "config", None))
    try:
        config = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            stderr.print(str(issue), markup=False)
        stderr.print(f"{path}: {len(exc.issues)} error(s); nothing was started", markup=False)
        return EXIT_CONFIG
    if not args.online:
        emit(args, {"config": str(path), "valid": True, "warnings": list(config.warnings)},
             lambda: stdout.print(format_summary(config), markup=False))
        return EXIT_OK
    probes = asyncio.run(probe_all(config, show_progress=not args.json))
    emit(args, {"config": str(path), "valid": True, "warnings": list(config.warnings),
                "channels": [p.to_dict() for p in probes]},
         lambda: render(probes))
    return EXIT_OK if all(p.ok for p in probes) else EXIT_FAILED


def known_skus(config: Config) -> set[str]:
    """Master SKUs from the config and, when the database exists, from it (read-only)."""
    skus = {str(s) for s in config.skus} | {b.sku for b in config.bundles}
    database = config.agent.database
    if database.exists():
        try:
            conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
            try:
                skus |= master_skus(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            stderr.print(f"warning: cannot read SKUs from {database}: {exc}", markup=False)
    return skus


async def probe_all(config: Config, *, show_progress: bool) -> list[ChannelProbe]:
    """Probe every enabled channel one after another, with a progress bar over them."""
    names = [n for n, ch in config.channels.items() if ch.enabled]
    skus = known_skus(config)
    probes = []
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=stderr, transient=True, disable=not show_progress,
    ) as progress:
        task = progress.add_task("channels", total=len(names))
        for name in names:
            def step(what: str, name: str = name) -> None:
                progress.update(task, description=f"{name}: {what}")

            probes.append(await probe_channel(name, config, skus, step=step))
            progress.advance(task)
    return probes


def render(probes: list[ChannelProbe]) -> None:
    """One table of checks, then each channel's unmapped and unlisted SKUs."""
    table = Table(title="channels, checked online")
    for column in ("channel", "kind", "check", "result"):
        table.add_column(column)
    for probe in probes:
        for n, check in enumerate(probe.checks):
            mark = "[green]ok[/]" if check.ok else "[red]FAILED[/]"
            table.add_row(probe.channel if n == 0 else "", probe.kind if n == 0 else "",
                          check.name, f"{mark} {_escape(check.detail)}")
    stdout.print(table)
    for probe in probes:
        for label, skus in (("unmapped (no master SKU)", probe.unmapped),
                            ("master SKUs not listed", probe.not_listed)):
            if skus:
                more = f" … and {len(skus) - SHOWN} more (see --json)" if len(skus) > SHOWN else ""
                stdout.print(f"{probe.channel}: {len(skus)} {label}: "
                             f"{', '.join(skus[:SHOWN])}{more}", markup=False)
    failed = [p.channel for p in probes if not p.ok]
    stdout.print(f"{len(probes) - len(failed)} of {len(probes)} channel(s) passed"
                 + (f"; failed: {', '.join(failed)}" if failed else ""), markup=False)


def _escape(text: Any) -> str:
    """Channel text shown in a rich table, never read as markup."""
    return str(text).replace("[", r"\[")
