"""`storesync sandbox KIND`: run one fake channel on its own, for demos, daemon tests and trying
the agent without a real shop. It serves the channel's API plus its /_control API and runs until
Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from agent.commands.context import EXIT_CONFIG, EXIT_OK, CommandFailed, stderr, stdout
from connectors.sandbox import SANDBOXES, serve

SEED_QUANTITY = 25  # per seeded SKU: enough for a demo's shoppers, small enough to sell out


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the sandbox command."""
    parser = sub.add_parser(
        "sandbox",
        parents=[common],
        help="run a fake channel API (for demos and tests)",
        description="Serve a fake channel's API and its /_control API (seed listings, place "
        "orders, inject faults, point webhooks) until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("kind", choices=sorted(SANDBOXES), help="which channel to fake")
    parser.add_argument("--port", type=_port, required=True, help="port to listen on (0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--webhook-url", metavar="URL", help="where to send webhooks")
    parser.add_argument("--webhook-secret", metavar="S", default="", help="webhook signing key")
    parser.add_argument("--api-key", metavar="K", help="the API key clients must present")
    parser.add_argument(
        "--seed-skus",
        type=int,
        default=0,
        metavar="N",
        help=f"create N listings SKU-001.. with {SEED_QUANTITY} units each",
    )
    parser.add_argument(
        "--record-exchanges",
        action="store_true",
        help="record every API request and response (GET /_control/exchanges)",
    )
    parser.set_defaults(func=run)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def run(args: argparse.Namespace) -> int:
    """Serve the sandbox until a stop signal."""
    if args.seed_skus < 0:
        raise CommandFailed("--seed-skus must not be negative", EXIT_CONFIG)
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {
        "webhook_url": args.webhook_url,
        "webhook_secret": args.webhook_secret,
    }
    if args.api_key:
        options["api_key"] = args.api_key
    if args.record_exchanges:
        options["record_exchanges"] = True
    sandbox = SANDBOXES[args.kind](**options)
    if args.seed_skus:
        sandbox.seed_catalog(
            {f"SKU-{n:03d}": SEED_QUANTITY for n in range(1, args.seed_skus + 1)}
        )
    try:
        served = await serve(sandbox.build_app(), args.host, args.port)
    except OSError as exc:
        raise CommandFailed(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        stdout.print(f"{args.kind} sandbox listening on {served.url}", markup=False)
        stdout.print(f"  control API: {served.url}/_control/state", markup=False)
        stdout.print(f"  webhooks to: {args.webhook_url or '(none; PUT /_control/webhooks)'}",
                     markup=False)
        if args.seed_skus:
            stdout.print(f"  seeded {args.seed_skus} SKU(s), {SEED_QUANTITY} units each",
                         markup=False)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await served.close()
    stderr.print(f"{args.kind} sandbox stopped", markup=False)
    return EXIT_OK
