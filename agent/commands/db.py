"""`storesync db check | backup`: prove the store is sound; copy it safely while running."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from agent.commands.context import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    CommandFailed,
    add_json_flag,
    emit,
    load,
    open_store,
    stderr,
    stdout,
)
from agent.store.backup import BackupError, backup_database
from agent.store.check import check_database


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the db commands."""
    db = sub.add_parser("db", parents=[common], help="check or back up the database")
    actions = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        parents=[common],
        help="integrity check and invariants (stock = ledger, committed = open lines)",
    )
    add_json_flag(check)
    check.set_defaults(func=run_check)
    backup = actions.add_parser("backup", parents=[common], help="online backup to a new file")
    backup.add_argument("target", type=Path)
    backup.set_defaults(func=run_backup)


def run_check(args: argparse.Namespace) -> int:
    """Run every check; exit 1 on any breach."""
    config = load(args)
    path = config.agent.database
    if not path.exists():
        stderr.print(f"no database at {path}", markup=False)
        return EXIT_NOT_FOUND
    with open_store(config) as store:  # opening applies pending migrations and replays the WAL
        try:
            breaches = check_database(store.reader())
        except sqlite3.DatabaseError as exc:
            raise CommandFailed(f"{path}: {exc}") from exc
    result = {
        "database": str(path),
        "ok": not breaches,
        "breaches": [{"check": b.check, "detail": b.detail} for b in breaches],
    }

    def render() -> None:
        if not breaches:
            stdout.print(
                f"{path}: ok (integrity, foreign keys, stock = ledger, "
                "committed = open lines, one pending push per key)",
                markup=False,
            )
        for b in breaches:
            stdout.print(f"{path}: {b.check}: {b.detail}", markup=False)

    emit(args, result, render)
    return EXIT_OK if not breaches else EXIT_FAILED


def run_backup(args: argparse.Namespace) -> int:
    """Copy the database with SQLite's backup API."""
    config = load(args)
    path = config.agent.database
    if not path.exists():
        stderr.print(f"no database at {path}", markup=False)
        return EXIT_NOT_FOUND
    try:
        size = backup_database(path, args.target)
    except BackupError as exc:
        raise CommandFailed(str(exc)) from exc
    stdout.print(f"backed up {path} to {args.target} ({size:,} bytes, integrity ok)", markup=False)
    return EXIT_OK
