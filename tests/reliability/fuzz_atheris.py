"""Coverage-guided fuzzing with atheris (libFuzzer) of the parsers hostile input reaches first.

    python -m tests.reliability.fuzz_atheris parse_event -runs=100000
    python -m tests.reliability.fuzz_atheris stock_csv -max_total_time=600
    python -m tests.reliability.fuzz_atheris config -runs=20000

Targets: `parse_event` (every webhook kind's verify_webhook on signed bytes, then parse_event),
`stock_csv` (agent.stock_csv.parse_counts) and `config` (agent.config.load_config on the bytes as
a file). Each allows only its documented error (WebhookRejected / PermanentError, per-line
RowErrors, ConfigError); anything else is a crash libFuzzer reports with the input that made it.
atheris is optional (the `fuzz` extra: `pip install -e '.[fuzz]'`; .ci/run installs it where a
wheel exists). test_atheris_runs_clean in test_hostile_input.py runs each target briefly when
atheris is importable.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECRET = "atheris-secret"


def _connectors() -> dict[str, Any]:
    from agent.config import load_config
    from agent.sandbox_config import channel_table
    from agent.sync.factory import build_connector
    from tests.reliability.hostile import WEBHOOK_KINDS

    path = Path(tempfile.mkdtemp()) / "storesync.toml"
    tables = "".join(channel_table(k, k, "http://127.0.0.1:9", f"key-{k}",
                                   {"webhook_secret": SECRET}) + "\n" for k in WEBHOOK_KINDS)
    path.write_text(f'[agent]\ndatabase = "x.db"\n\n{tables}')
    path.chmod(0o600)
    config = load_config(path)
    return {name: build_connector(name, ch, config.sync) for name, ch in config.channels.items()}


def parse_event_target() -> Callable[[bytes], None]:
    """Signed bytes through verify_webhook and parse_event of every webhook kind."""
    import atheris

    from connectors.base import PermanentError, WebhookRejected
    from tests.reliability.hostile import TOPICS, signed_headers

    connectors = _connectors()
    kinds = sorted(connectors)

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        kind = kinds[fdp.ConsumeIntInRange(0, len(kinds) - 1)]
        topics = TOPICS[kind]
        topic = topics[fdp.ConsumeIntInRange(0, len(topics) - 1)]
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
        connector = connectors[kind]
        try:
            delivery = connector.verify_webhook(signed_headers(kind, SECRET, body, topic), body)
        except WebhookRejected:
            return
        try:
            connector.parse_event(delivery.topic, {}, body)
        except PermanentError:
            pass

    return one


def stock_csv_target() -> Callable[[bytes], None]:
    """Bytes as a stock count file."""
    from agent.stock_csv import parse_counts

    def one(data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        _rows, errors = parse_counts(text, locations=["main", "east"], bundles={"PAIR"})
        for error in errors:
            if error.line < 1 or not error.message:
                raise AssertionError(f"an error that names no line: {error}")

    return one


def config_target() -> Callable[[bytes], None]:
    """Bytes as a config file."""
    from agent.config import ConfigError, load_config

    path = Path(tempfile.mkdtemp()) / "storesync.toml"

    def one(data: bytes) -> None:
        path.write_bytes(data)
        path.chmod(0o600)
        try:
            load_config(path, environ={})
        except ConfigError:
            pass

    return one


TARGETS: dict[str, Callable[[], Callable[[bytes], None]]] = {
    "parse_event": parse_event_target,
    "stock_csv": stock_csv_target,
    "config": config_target,
}


def main(argv: list[str]) -> None:
    """`python -m tests.reliability.fuzz_atheris TARGET [libFuzzer flags...]`."""
    import atheris

    if len(argv) < 2 or argv[1] not in TARGETS:
        raise SystemExit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags]")
    # Third-party packages imported first stay uninstrumented: instrumenting pydantic and
    # aiohttp costs a quarter of a minute at start and guides nothing in storesync's code.
    for package in ("pydantic", "httpx", "aiohttp", "structlog", "tenacity", "sqlite_utils",
                    "prometheus_client", "rich", "graphql", "apscheduler", "hypothesis"):
        __import__(package)
    with atheris.instrument_imports(include=["agent", "connectors"],
                                    enable_loader_override=False):
        import agent.config  # noqa: F401 - instrumented for coverage
        import agent.stock_csv  # noqa: F401
        import connectors.reference.webhooks  # noqa: F401
        import connectors.shopify.webhooks  # noqa: F401
        import connectors.woocommerce.webhooks  # noqa: F401
    target = TARGETS[argv[1]]()
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
