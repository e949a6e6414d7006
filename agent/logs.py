"""Structured logs: JSON under systemd or a pipe, readable on a terminal; secrets never written.

Channel, order and SKU are bound as context variables around each job, so every line says which
one it is about. A redaction processor masks configured secret values, token-like fields and
email addresses wherever they appear.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api_key|signature)", re.I)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
MASK = "***"


class Redactor:
    """A structlog processor that masks secrets and personal data in every field."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the known secret values (after a config reload)."""
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """Mask known secrets and email addresses in a string."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _EMAIL.sub("<email>", text)

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            if _SECRET_KEYS.search(key) and value is not None:
                event[key] = MASK
            elif isinstance(value, str):
                event[key] = self.redact(value)
            elif isinstance(value, BaseException):
                event[key] = self.redact(f"{type(value).__name__}: {value}")
        return event


def wants_json(log_format: str) -> bool:
    """JSON when asked, or under systemd, or when stderr is not a terminal."""
    if log_format != "auto":
        return log_format == "json"
    under_systemd = bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))
    return under_systemd or not sys.stderr.isatty()


CHATTY_LOGGERS = ("httpx", "apscheduler")  # aiohttp's access log is off (agent/runtime.py)


def configure_logging(log_format: str, log_level: str, redactor: Redactor) -> None:
    """Set up structlog, and the stdlib loggers of our libraries, for the daemon.

    Both go through the same processors: a line from APScheduler or aiohttp is JSON with a
    level and a timestamp like ours, and passes the redactor too.
    """
    level = getattr(logging, log_level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if wants_json(log_format)
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    stamp: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *stamp,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*stamp, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redactor,
                renderer,
            ],
        )
    )
    handler.addFilter(quiet_skipped_runs)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries speak up for warnings and errors. Their chatter (httpx's line for each request
    # the agent sends, APScheduler's for each job run) joins in at debug level only.
    root.setLevel(max(level, logging.WARNING))
    chatter = level if level <= logging.DEBUG else logging.WARNING
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatter)


def quiet_skipped_runs(record: logging.LogRecord) -> bool:
    """Drop APScheduler's warning that a job's turn came while its last run was still going.

    That is how a slow poll is meant to behave (the next run starts at the next turn after it
    ends), not something for ops to act on; it would otherwise fill the log every 2 seconds
    while a channel is slow.
    """
    return not (
        record.name.startswith("apscheduler")
        and "maximum number of running instances" in str(record.msg)
    )
