"""Log redaction: configured secrets, token-like fields and email addresses never reach a line."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from agent.logs import CHATTY_LOGGERS, MASK, Redactor, configure_logging


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


@pytest.fixture
def daemon_logging():
    """configure_logging as the daemon calls it; the global logging state restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    chatty = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    yield lambda secrets=(), level="info": configure_logging("json", level, Redactor(secrets))
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, level in chatty.items():
        logging.getLogger(name).setLevel(level)
    structlog.reset_defaults()


def lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_library_lines_are_json_and_redacted_like_ours(daemon_logging, capsys):
    daemon_logging(["lib-s3cr3t"])
    try:
        raise ValueError("refused lib-s3cr3t")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request for lib-s3cr3t")
    structlog.get_logger().warning("ours", error="lib-s3cr3t")
    err = capsys.readouterr().err
    assert "lib-s3cr3t" not in err
    library, ours = lines(err)
    assert library["level"] == "error" and library["logger"] == "aiohttp.server"
    assert library["event"] == f"Error handling request for {MASK}" and "timestamp" in library
    assert f"ValueError: refused {MASK}" in library["exception"]
    assert ours["event"] == "ours" and ours["error"] == MASK


def test_a_job_still_running_at_its_next_turn_is_not_logged(daemon_logging, capsys):
    daemon_logging()
    scheduler = logging.getLogger("apscheduler.scheduler")
    scheduler.warning('Execution of job "%s" skipped: maximum number of running instances '
                      "reached (%d)", "shopify:poll", 1)
    scheduler.warning('Run time of job "%s" was missed by %s', "shopify:poll", "0:01:02")
    (missed,) = lines(capsys.readouterr().err)
    assert missed["event"] == 'Run time of job "shopify:poll" was missed by 0:01:02'
    assert missed["level"] == "warning"


@pytest.mark.parametrize("level", ["info", "debug"])
def test_request_lines_of_the_http_libraries_show_at_debug_level_only(daemon_logging, capsys,
                                                                     level):
    daemon_logging(level=level)
    logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1/orders "HTTP/1.1 200 OK"')
    logging.getLogger("apscheduler.executors.default").info('Running job "shopify:poll"')
    logging.getLogger("httpx").warning("a library warning")
    shown = [line["event"] for line in lines(capsys.readouterr().err)]
    if level == "debug":
        assert len(shown) == 3 and shown[0].startswith("HTTP Request: GET")
    else:
        assert shown == ["a library warning"]
