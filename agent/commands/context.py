"""What every CLI command shares: loading the config, opening the store, exit codes, output."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from agent.config import Config, ConfigError, default_config_path, load_config
from agent.engine import Engine, Rules
from agent.store import Store, StoreError

# Exit codes scripts can rely on (documented in the README).
EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and found a problem (an invariant breach, rows with errors)
EXIT_CONFIG = 2  # the config or the command line is wrong; fix it before retrying
EXIT_NOT_FOUND = 3  # the thing asked about does not exist
EXIT_AGENT_DOWN = 3  # the command needs the running agent and cannot reach it (as `status`)

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class CommandFailed(Exception):
    """Stop the command with a message and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load(args: argparse.Namespace) -> Config:
    """The config named by --config, $STORESYNC_CONFIG or the default path."""
    path = default_config_path(getattr(args, "config", None))
    try:
        config = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            stderr.print(str(issue), markup=False)
        raise CommandFailed(
            f"{path}: {len(exc.issues)} error(s) in the config", EXIT_CONFIG
        ) from exc
    for warning in config.warnings:
        stderr.print(f"warning: {warning}", markup=False)
    return config


@contextmanager
def open_store(config: Config, *, create: bool = False) -> Iterator[Store]:
    """Open the config's database; a command that writes (`create`) first syncs the catalog."""
    path = config.agent.database
    if not create and not path.exists():
        raise CommandFailed(
            f"no database at {path} (it is created by `storesync run` or a stock command)",
            EXIT_NOT_FOUND,
        )
    try:
        store = Store(path)
    except (StoreError, OSError) as exc:
        raise CommandFailed(f"cannot open the database {path}: {exc}") from exc
    except Exception as exc:  # sqlite3 errors: corrupt file, read-only folder, full disk
        raise CommandFailed(f"cannot open the database {path}: {exc}") from exc
    try:
        if create:
            engine = engine_for(config)
            store.run(lambda tx: engine.sync_catalog(tx, full=False))
        yield store
    finally:
        store.close()


@contextmanager
def open_reader(config: Config) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the database: works whether or not the agent runs."""
    path = config.agent.database
    if not path.exists():
        raise CommandFailed(
            f"no database at {path} (it is created when `storesync run` starts)", EXIT_NOT_FOUND
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise CommandFailed(f"cannot open the database {path}: {exc}") from exc
    try:
        yield conn
    except sqlite3.Error as exc:
        raise CommandFailed(f"cannot read the database {path}: {exc}") from exc
    finally:
        conn.close()


def engine_for(config: Config) -> Engine:
    """An engine with the config's rules."""
    return Engine(Rules.from_config(config))


def emit(args: argparse.Namespace, data: Any, render: Callable[[], None]) -> None:
    """Print `data` as JSON under --json, otherwise call `render` for people."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        render()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Give a command the --json switch."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def check_filters(config: Config, channel: str | None, limit: int | None = None) -> None:
    """A --channel the config names and a --limit of at least 1, or a usage error (exit 2)."""
    if channel is not None and channel not in config.channels:
        raise CommandFailed(
            f"unknown channel {channel!r}; channels: {', '.join(config.channels) or 'none'}",
            EXIT_CONFIG,
        )
    if limit is not None and limit < 1:
        raise CommandFailed("--limit must be at least 1", EXIT_CONFIG)
