"""Log redaction: configured secrets, token-like fields and email addresses never reach a line."""

from __future__ import annotations

import io
import json

import structlog

from agent.logs import MASK, Redactor


def render(redactor: Redactor, **fields) -> dict:
    out = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(out), processors=[redactor, structlog.processors.JSONRenderer()]
    )
    logger.info("event", **fields)
    return json.loads(out.getvalue())


def test_known_secret_values_are_masked_anywhere():
    line = render(Redactor(["shpat_abcdef123"]), error="HTTP 401 for token shpat_abcdef123 at x")
    assert "shpat_abcdef123" not in json.dumps(line) and MASK in line["error"]


def test_token_like_fields_and_emails_are_masked():
    line = render(Redactor(), access_token="t0k3n", authorization="Bearer x",
                  message="order for jane.doe@example.com shipped")
    assert line["access_token"] == MASK and line["authorization"] == MASK
    assert "jane.doe@example.com" not in line["message"] and "<email>" in line["message"]


def test_exceptions_are_rendered_redacted():
    line = render(Redactor(["s3cr3t-value"]), error=RuntimeError("bad s3cr3t-value"))
    assert line["error"] == f"RuntimeError: bad {MASK}"


def test_reloaded_secrets_replace_old_ones():
    redactor = Redactor(["old-secret"])
    redactor.set_secrets(["new-secret"])
    assert redactor.redact("old-secret new-secret") == f"old-secret {MASK}"
