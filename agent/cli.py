"""The `storesync` command: one entry point, a sub-command per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent.commands import (
    channels,
    check_config,
    db,
    demo,
    init,
    orders,
    outbox,
    run,
    sandbox,
    ship,
    sku,
    status,
    stock,
)
from agent.commands.context import EXIT_FAILED, CommandFailed, stderr

COMMANDS = (
    run, status, channels, orders, ship, outbox, init, check_config, stock, sku, db, sandbox, demo
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    # Every command takes --config; SUPPRESS keeps a sub-command from hiding the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="config file (default: $STORESYNC_CONFIG, then /etc/storesync/storesync.toml)",
    )
    parser = argparse.ArgumentParser(
        prog="storesync",
        parents=[common],
        description="Keep stock, orders and shipments in step across Shopify, WooCommerce, "
        "Amazon and eBay.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CommandFailed as exc:
        stderr.print(f"error: {exc}", markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.print("interrupted", markup=False)
        return 130
    except BrokenPipeError:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
