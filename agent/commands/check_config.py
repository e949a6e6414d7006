"""`storesync check-config`: validate a config file and summarise it, or list every error."""

from __future__ import annotations

import argparse

from agent.commands.context import EXIT_CONFIG, EXIT_OK, stderr, stdout
from agent.config import ConfigError, default_config_path, format_summary, load_config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the check-config command."""
    parser = sub.add_parser(
        "check-config",
        parents=[common],
        help="validate a config file",
        description="Validate a config file. Exit 0 with a summary, or 2 listing every error "
        "as `file: key.path: message`.",
    )
    parser.add_argument("path", nargs="?", help="the config file (same as --config)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate and print the summary or the errors."""
    path = default_config_path(args.path or getattr(args, "config", None))
    try:
        config = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            stderr.print(str(issue), markup=False)
        stderr.print(f"{path}: {len(exc.issues)} error(s); nothing was started", markup=False)
        return EXIT_CONFIG
    stdout.print(format_summary(config), markup=False)  # ends with any warnings
    return EXIT_OK
