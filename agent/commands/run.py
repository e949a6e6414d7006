"""`storesync run`: the service (see agent/runtime.py)."""

from __future__ import annotations

import argparse

from agent.config import default_config_path
from agent.runtime import run as run_service


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the run command."""
    parser = sub.add_parser(
        "run",
        parents=[common],
        help="run the sync service (under systemd, or in a terminal)",
        description="Run the service: receive webhooks, poll channels, push stock and "
        "shipments. SIGTERM stops it cleanly; SIGHUP reloads the config. Exit code 2 means "
        "the config is wrong.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the service and block until it stops."""
    return run_service(default_config_path(getattr(args, "config", None)))
