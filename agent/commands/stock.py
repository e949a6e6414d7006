"""`storesync stock set | adjust | import`: change stock, and watch the published numbers follow."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from agent.commands.context import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    CommandFailed,
    add_json_flag,
    emit,
    engine_for,
    load,
    open_store,
    stderr,
    stdout,
)
from agent.commands.sku import render_sku
from agent.engine import Engine, EngineError
from agent.stock_csv import parse_counts
from agent.store import Tx
from agent.store.queries import sku_report

IMPORT_CHUNK_ROWS = 500


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the stock commands."""
    stock = sub.add_parser("stock", parents=[common], help="set, adjust or import stock counts")
    actions = stock.add_subparsers(dest="stock_action", required=True, metavar="ACTION")

    set_ = actions.add_parser("set", parents=[common], help="set a SKU's counted units")
    set_.add_argument("sku")
    set_.add_argument("qty", type=int)
    set_.add_argument("--location", help="location name (default: the first in the config)")
    add_json_flag(set_)
    set_.set_defaults(func=run_set)

    adjust = actions.add_parser("adjust", parents=[common], help="add or remove units")
    adjust.add_argument("sku")
    adjust.add_argument("delta", type=int, help="units to add (negative to remove)")
    adjust.add_argument("--reason", default="adjustment", help="recorded in the ledger")
    adjust.add_argument("--location", help="location name (default: the first in the config)")
    add_json_flag(adjust)
    adjust.set_defaults(func=run_adjust)

    import_ = actions.add_parser(
        "import",
        parents=[common],
        help="set counts from a CSV file (sku,location,qty)",
        description="Set counts from a CSV file with a header line sku,location,qty (location "
        "may be blank for the first location). Every line is checked first: if any line is "
        "wrong, nothing is applied unless --skip-bad is given. Counts are absolute, so "
        "running the same file twice is safe.",
    )
    import_.add_argument("file", type=Path)
    import_.add_argument("--skip-bad", action="store_true", help="apply the good lines anyway")
    add_json_flag(import_)
    import_.set_defaults(func=run_import)


def run_set(args: argparse.Namespace) -> int:
    """Set one count."""
    return _change_and_report(
        args, lambda engine, tx: engine.set_count(tx, args.sku, args.qty, location=args.location)
    )


def run_adjust(args: argparse.Namespace) -> int:
    """Apply one movement."""
    return _change_and_report(
        args,
        lambda engine, tx: engine.apply_movement(
            tx, args.sku, args.delta, location=args.location, reason=args.reason, ref="cli"
        ),
    )


def _change_and_report(
    args: argparse.Namespace, change: Callable[[Engine, Tx], object]
) -> int:
    """Apply one stock change in its own transaction, then print the SKU's report."""
    config = load(args)
    engine = engine_for(config)
    with open_store(config, create=True) as store:
        try:
            store.run(lambda tx: change(engine, tx))
        except EngineError as exc:
            raise CommandFailed(str(exc), EXIT_CONFIG) from exc
        report = sku_report(store.reader(), args.sku)
    emit(args, report, lambda: render_sku(report))
    return EXIT_OK


def run_import(args: argparse.Namespace) -> int:
    """Validate a whole file, then apply it in chunks with a progress bar."""
    config = load(args)
    engine = engine_for(config)
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandFailed(f"cannot read {args.file}: {exc}", EXIT_CONFIG) from exc
    rows, errors = parse_counts(
        text, locations=engine.rules.locations, bundles=set(engine.rules.bundles)
    )
    applied = changed = 0

    def summary() -> dict[str, object]:
        return {
            "file": str(args.file),
            "rows": len(rows) + len(errors),
            "applied": applied,
            "changed": changed,
            "errors": [{"line": e.line, "message": e.message} for e in errors],
        }

    for error in errors:
        stderr.print(f"{args.file}:{error.line}: {error.message}", markup=False)
    if errors and not args.skip_bad:
        stderr.print(
            f"{len(errors)} bad line(s); nothing was applied (fix them, or use --skip-bad)",
            markup=False,
        )
        emit(args, summary(), lambda: None)
        return EXIT_FAILED
    with (
        open_store(config, create=True) as store,
        Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
            disable=not stderr.is_terminal,
        ) as progress,
    ):
        task = progress.add_task("import", total=len(rows))
        for start in range(0, len(rows), IMPORT_CHUNK_ROWS):
            chunk = [(r.sku, r.location, r.qty) for r in rows[start : start + IMPORT_CHUNK_ROWS]]
            try:
                changed += store.run(
                    lambda tx, chunk=chunk: engine.set_counts(  # type: ignore[misc]
                        tx, chunk, reason="import", ref=args.file.name
                    )
                )
            except EngineError as exc:
                raise CommandFailed(f"{args.file}: {exc}") from exc
            applied += len(chunk)
            progress.advance(task, len(chunk))

    result = summary()

    def render() -> None:
        table = Table("file", "lines", "applied", "changed", "bad")
        table.add_row(*(str(result[k]) for k in ("file", "rows", "applied", "changed")),
                      str(len(errors)))
        stdout.print(table)

    emit(args, result, render)
    return EXIT_OK
