"""Hostile input never crashes storesync, never earns a 5xx, and never stores an unsigned delivery.

Targets and how each is attacked (Hypothesis; see fuzz_atheris.py for the coverage-guided run):

- each connector's `verify_webhook` and `parse_event`, called directly: mutated real payloads
  (taken from the sandboxes), random JSON with the parsers' own field names, truncated bodies,
  binary, invalid UTF-8, 5000-digit numbers, lone surrogates, 100 000-deep nesting. Only the
  documented errors may escape: WebhookRejected from verify_webhook, PermanentError from
  parse_event.
- the webhook endpoint of a real `storesync run` (a subprocess, with every channel kind's sandbox
  in its own process), over loopback: unsigned, wrongly signed and correctly signed garbage
  bodies and headers to every channel's path. Never a 5xx, the daemon stays up and ready, no inbox
  row from an unsigned or wrongly signed request, every signed garbage delivery ends processed or
  parked (none stuck), bodies of several MB answered 413, and the daemon's resident memory grows
  less than RSS_BOUND_MIB over the whole barrage.
- `storesync stock import` files: the parser on random, truncated, binary and huge-field CSVs
  (every error names a line of the file), and the real CLI on a few: a bad line anywhere means a
  clear message with its line number and nothing applied.
- config files: random TOML text and random structures, raw and as mutations of the example
  config, through `load_config`: a Config or a ConfigError, never another exception.

The CI subset runs a few hundred inputs per target with a fixed seed (derandomized); the full run
(STORESYNC_RELIABILITY=full) runs thousands per target, randomized.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Config, ConfigError, load_config
from agent.processes import REPO, child_env
from agent.sandbox_config import channel_table, toml_value
from agent.stock_csv import parse_counts
from agent.sync.factory import build_connector
from connectors.base import ChannelEvent, Connector, PermanentError, WebhookRejected
from connectors.sandbox import SANDBOX_CHANNELS
from tests.reliability.hostile import (
    POLLED_KINDS,
    SIGNERS,
    TOPICS,
    WEBHOOK_KINDS,
    bodies,
    dumps,
    header_values,
    json_scalars,
    json_values,
    mutations,
    rss_kib,
    signed_headers,
    templates,
)
from tests.reliability.scale import FULL, size
from tests.runtime.harness import Daemon, Sandbox, wait_until

KINDS = (*WEBHOOK_KINDS, *POLLED_KINDS)
SECRET = "hostile-webhook-secret"
# What the daemon's resident memory may grow by over the whole barrage: far below what buffering
# each oversized body (8 MiB) would cost, far above allocator noise.
RSS_BOUND_MIB = 64
OVERSIZED = 8 * 1024 * 1024
BODY_LIMIT = 2 * 1024 * 1024  # the default [sync] webhook_body_limit


def fuzz(ci: int, full: int) -> Any:
    """Hypothesis settings: `ci` examples derandomized in CI, `full` random ones in the full run."""
    return settings(
        max_examples=size(ci, full),
        derandomize=not FULL,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture],
    )


SAMPLES = templates()


# -- connectors, called directly ------------------------------------------------------------------


def _config_text(urls: dict[str, str]) -> str:
    tables = "".join(
        channel_table(kind, kind, url, f"key-{kind}", {"webhook_secret": SECRET}) + "\n"
        for kind, url in urls.items()
    )
    return f'[agent]\ndatabase = "storesync.db"\n\n{tables}'


@pytest.fixture(scope="module")
def connectors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Connector]]:
    """One connector of every kind, built from a config exactly as the daemon builds them."""
    path = tmp_path_factory.mktemp("connectors") / "storesync.toml"
    path.write_text(_config_text({kind: "http://127.0.0.1:9" for kind in SANDBOX_CHANNELS}))
    path.chmod(0o600)
    config = load_config(path)
    built = {name: build_connector(name, channel, config.sync)
             for name, channel in config.channels.items()}
    # Shopify maps level updates through the listings it read: give it one so they are parsed.
    shop: Any = built["shopify"]
    shop._sku_for_item = {"1": "SKU-1"}
    shop._location_gid = "gid://shopify/Location/1"
    yield built

    async def close() -> None:
        for connector in built.values():
            await connector.aclose()

    asyncio.run(close())


def _topics(kind: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(TOPICS[kind]), st.text(max_size=20))


@pytest.mark.parametrize("kind", KINDS)
@fuzz(ci=80, full=5000)
@given(data=st.data())
def test_parse_event_raises_only_permanent_error(connectors, kind, data):
    connector = connectors[kind]
    if kind in POLLED_KINDS and data.draw(st.integers(0, 3), label="skip") and not FULL:
        return  # polled kinds refuse everything alike: a quarter of the examples suffice in CI
    topic = data.draw(_topics(kind), label="topic")
    body = data.draw(bodies(kind, SAMPLES), label="body")
    try:
        event = connector.parse_event(topic, {}, body)
    except PermanentError:
        return
    assert isinstance(event, ChannelEvent)


@pytest.mark.parametrize("kind", KINDS)
@fuzz(ci=50, full=3000)
@given(data=st.data())
def test_verify_webhook_raises_only_webhook_rejected(connectors, kind, data):
    connector = connectors[kind]
    body = data.draw(bodies(kind, SAMPLES), label="body")
    signer = SIGNERS[kind]
    if data.draw(st.booleans(), label="signed"):
        headers = signed_headers(kind, SECRET, body, data.draw(_topics(kind), label="topic"))
    else:
        headers = {}
    names = st.sampled_from([signer.signature, signer.topic, signer.key or "X-Id",
                             signer.triggered_at or "X-At", "Content-Type"])
    for name, value in data.draw(st.dictionaries(names, header_values(), max_size=4)).items():
        headers[name] = value.decode("latin-1")
    try:
        delivery = connector.verify_webhook(headers, body)
    except WebhookRejected:
        return
    assert kind in WEBHOOK_KINDS, "a polled channel accepted a webhook"
    assert delivery.delivery_key and delivery.topic


# -- stock import files ---------------------------------------------------------------------------

LOCATIONS = ["main", "east"]
_CELLS = st.one_of(
    st.sampled_from(["SKU-1", "SKU-2", "main", "east", "", " ", "3", "-1", "x", "PAIR"]),
    st.integers().map(str),
    st.text(max_size=12),
)
_CSV_TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(st.lists(_CELLS, max_size=5), max_size=12).map(
        lambda rows: "sku,location,qty\n" + "\n".join(",".join(r) for r in rows)
    ),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.integers(1, 300_000).map(lambda n: 'sku,qty\n"' + "x" * n + '",1\n'),
    st.just('sku,location,qty\nSKU-1,main,"3\nSKU-2,main,4\n'),
    st.just("sku,location,qty\nSKU-1,main,\x00\n"),
)


@fuzz(ci=300, full=10000)
@given(text=_CSV_TEXT)
def test_stock_file_errors_name_a_line(text):
    rows, errors = parse_counts(text, locations=LOCATIONS, bundles={"PAIR"})
    lines = text.count("\n") + text.count("\r") + 1
    for error in errors:
        assert 1 <= error.line <= lines, error
        assert error.message.strip()
    for row in rows:
        assert row.sku and row.location in LOCATIONS and row.qty >= 0


STOCK_CONFIG = """
[agent]
database = "store.db"

[[locations]]
name = "main"
[[locations]]
name = "east"

[[bundles]]
sku = "PAIR"
components = { SKU-1 = 2 }

[skus.SKU-1]
[skus.SKU-2]
"""


def _stock_cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(tmp / "storesync.toml"),
         "stock", *args],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=60, check=False,
    )


def _on_hand(tmp: Path) -> dict[tuple[str, str], int]:
    db = tmp / "store.db"
    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    try:
        return {(s, loc): q for s, loc, q in conn.execute(
            "SELECT sku, location, on_hand FROM stock")}
    finally:
        conn.close()


# Files the real CLI gets: each has a bad line somewhere (the line the message must name).
BAD_FILES: list[tuple[str, bytes, int]] = [
    ("huge qty after 600 good lines",
     b"sku,location,qty\n" + b"".join(f"GOOD-{n},main,5\n".encode() for n in range(600)) +
     b"SKU-2,main," + b"9" * 30 + b"\n", 602),
    ("a field past the csv size limit",
     b"sku,location,qty\nSKU-1,main,2\nSKU-2,main,\"" + b"9" * 200_000 + b"\"\n", 3),
    ("an unterminated quote", b"sku,location,qty\nSKU-1,main,2\nSKU-2,\"main,4\n", 3),
    ("a negative count", b"sku,location,qty\nSKU-1,main,2\nSKU-2,main,-4\n", 3),
]


@pytest.mark.parametrize(("why", "content", "line"), BAD_FILES, ids=[f[0] for f in BAD_FILES])
def test_a_bad_stock_file_applies_nothing_and_names_the_line(tmp_path, why, content, line):
    (tmp_path / "storesync.toml").write_text(STOCK_CONFIG)
    assert _stock_cli(tmp_path, "set", "SKU-1", "7").returncode == 0
    before = _on_hand(tmp_path)
    counts = tmp_path / "counts.csv"
    counts.write_bytes(content)
    done = _stock_cli(tmp_path, "import", str(counts))
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert f"counts.csv:{line}:" in done.stderr, done.stderr
    assert _on_hand(tmp_path) == before


def test_a_binary_stock_file_is_refused_with_a_message(tmp_path):
    (tmp_path / "storesync.toml").write_text(STOCK_CONFIG)
    counts = tmp_path / "counts.csv"
    counts.write_bytes(bytes(range(256)) * 40)
    done = _stock_cli(tmp_path, "import", str(counts))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert "counts.csv" in done.stderr
    assert _on_hand(tmp_path) == {}


# -- config files ---------------------------------------------------------------------------------

EXAMPLE = tomllib.loads((REPO / "config" / "storesync.example.toml").read_text())
# Every variable the example's secrets name, so the example itself loads and mutations of it get
# past the secrets to the checks behind them.
ENVIRON = {name: "value-from-env" for name in re.findall(
    r'env = "([A-Z_]+)"', (REPO / "config" / "storesync.example.toml").read_text())}


def to_toml(data: Any) -> str:
    """A document of top-level keys whose tables are written inline (any structure fits)."""
    if not isinstance(data, dict):
        data = {"value": data}
    return "".join(f"{json.dumps(str(k))} = {_value(v)}\n" for k, v in data.items())


def _value(value: Any) -> str:
    if value is None:
        return '""'  # TOML has no null
    if isinstance(value, dict):
        pairs = (f"{json.dumps(str(k))} = {_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return toml_value(value)


def _load(tmp: Path, text: str) -> None:
    path = tmp / "storesync.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    path.chmod(0o600)
    try:
        config = load_config(path, environ=ENVIRON)
    except ConfigError as exc:
        assert exc.issues and all(issue.message for issue in exc.issues)
        return
    assert isinstance(config, Config)


@fuzz(ci=200, full=5000)
@given(text=st.one_of(st.text(max_size=300), st.sampled_from(
    ["[agent", "a = 1\na = 2", "x = 1979-05-27T07:32:00Z", "[[x]]\n[x]", "k = '''", "= 1"])))
def test_random_toml_text_is_a_config_error(tmp_path, text):
    _load(tmp_path, text)


@fuzz(ci=300, full=10000)
@given(data=st.one_of(mutations(EXAMPLE, json_scalars()), mutations(EXAMPLE), json_values(40)))
def test_random_config_structures_are_a_config_error(tmp_path, data):
    _load(tmp_path, to_toml(data))


# -- the webhook endpoint of a real daemon --------------------------------------------------------


class Target:
    """A running daemon with one channel of every kind, and an HTTP client for it."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.client = httpx.Client(timeout=30)
        self.statuses: dict[int, int] = {}
        self.refused = 0  # uploads the daemon cut off mid-body (it answered 413 and closed)

    def post(self, kind: str, body: Any, headers: dict[str, Any]) -> httpx.Response:
        response = self.client.post(f"{self.daemon.webhooks}/webhooks/{kind}", content=body,
                                    headers=headers)
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, response.text)
        return response

    def inbox_rows(self) -> int:
        return int(self.daemon.query("SELECT count(*) FROM inbox")[0][0])

    def alive(self) -> None:
        assert self.daemon.process is not None and self.daemon.process.running, self.daemon.log()
        assert self.client.get(f"{self.daemon.ops}/readyz").status_code == 200


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("endpoint")
    sandboxes = [Sandbox(tmp, kind, kind=kind, webhook_secret=SECRET) for kind in KINDS]
    daemon = Daemon(tmp, sandboxes, poll_interval="1h", reconcile_interval="1h",
                    sync_toml="inbox_max_attempts = 1")
    try:
        daemon.start()
        found = Target(daemon)
        found.rss_start = rss_kib(daemon.process.proc.pid)  # type: ignore[attr-defined, union-attr]
        yield found
        found.alive()
        grown = rss_kib(daemon.process.proc.pid) - found.rss_start  # type: ignore[attr-defined, union-attr]
        assert grown < RSS_BOUND_MIB * 1024, f"the daemon grew by {grown} KiB"
        found.client.close()
    finally:
        daemon.stop()
        for sandbox in sandboxes:
            sandbox.stop()


def _wrong_signature(kind: str, body: bytes, how: str) -> dict[str, Any]:
    signer = SIGNERS[kind]
    topic = TOPICS[kind][0]
    headers: dict[str, Any]
    if how == "missing":
        headers = signed_headers(kind, SECRET, body, topic)
        del headers[signer.signature]
    elif how == "other secret":
        headers = signed_headers(kind, SECRET + "x", body, topic)
    elif how == "other body":
        headers = signed_headers(kind, SECRET, body + b" ", topic)
    else:
        headers = signed_headers(kind, SECRET, body, topic)
        headers[signer.signature] = how.encode("latin-1")
    return headers


@fuzz(ci=200, full=4000)
@given(
    kind=st.sampled_from(KINDS),
    body=st.sampled_from(KINDS).flatmap(lambda k: bodies(k, SAMPLES)),
    how=st.one_of(st.sampled_from(["missing", "other secret", "other body", "", "=", "\xff\xfe"]),
                  st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                          max_size=60)),
    junk=st.dictionaries(st.sampled_from(["X-Shopify-Topic", "X-WC-Webhook-Topic", "X-Id",
                                          "Content-Type", "X-Reference-Delivery"]),
                         header_values(), max_size=3),
)
def test_unsigned_and_wrongly_signed_deliveries_store_nothing(target, kind, body, how, junk):
    before = target.inbox_rows()
    headers = {**_wrong_signature(kind, body, how), **junk}
    response = target.post(kind, body, headers)
    assert response.status_code in (400, 401, 413) or (
        # WooCommerce's activation ping is unsigned by design; it is answered and not stored.
        kind == "woocommerce" and response.json() == {"ok": True}), response.text
    assert target.inbox_rows() == before


@fuzz(ci=200, full=4000)
@given(data=st.data())
def test_signed_garbage_is_answered_and_parked_never_a_5xx(target, data):
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    body = data.draw(bodies(kind, SAMPLES), label="body")
    topic = data.draw(st.one_of(st.sampled_from(TOPICS[kind]), header_values().map(
        lambda v: v.decode("latin-1"))), label="topic")
    key = data.draw(st.one_of(st.none(), header_values().map(lambda v: v.decode("latin-1"))),
                    label="key")
    headers: dict[str, Any] = signed_headers(kind, SECRET, body, "-", key=key or None)
    # As bytes: httpx would encode text headers as ASCII, and these may be any octets.
    headers[SIGNERS[kind].topic] = topic.encode("latin-1")
    if key is not None and SIGNERS[kind].key:
        headers[SIGNERS[kind].key or ""] = key.encode("latin-1")
    response = target.post(kind, body, headers)
    assert response.status_code in (200, 400, 401, 413), response.text


def _absurd(kind: str) -> dict[str, Any]:
    """A well-formed order of `kind` whose first line wants 10**30 units."""
    order = json.loads(json.dumps(SAMPLES[kind][0]))
    lines = order["lines"] if kind == "reference" else order["line_items"]
    lines[0]["quantity"] = 10**30
    order["id"] = "R-absurd" if kind == "reference" else 999_999
    return order


@pytest.mark.parametrize("kind", WEBHOOK_KINDS)
def test_a_signed_order_with_absurd_numbers_is_parked_and_blocks_nothing(target, kind):
    poison = dumps(_absurd(kind))
    assert target.post(kind, poison, signed_headers(kind, SECRET, poison, TOPICS[kind][0])
                       ).status_code == 200
    fine = dumps(SAMPLES[kind][0])
    key = f"fine-after-poison-{kind}"
    headers = signed_headers(kind, SECRET, fine, TOPICS[kind][0], key=key)
    assert target.post(kind, fine, headers).status_code == 200
    wait_until(
        lambda: target.daemon.query(
            "SELECT count(*) FROM inbox WHERE channel = ? AND processed_at IS NULL AND parked = 0",
            (kind,))[0][0] == 0,
        timeout=20, what=f"{kind}: the poisoned delivery to be parked and the next one applied",
    )
    target.alive()


def test_signed_garbage_never_sticks_in_the_inbox(target):
    # Runs after the fuzzers above (file order): what they stored is processed or parked.
    target.alive()
    wait_until(
        lambda: target.daemon.query(
            "SELECT count(*) FROM inbox WHERE processed_at IS NULL AND parked = 0")[0][0] == 0,
        timeout=30, what="every stored delivery to be processed or parked",
    )
    stuck = target.daemon.query("SELECT count(*) FROM inbox WHERE error LIKE '%Traceback%'")
    assert stuck[0][0] == 0


def test_oversized_bodies_are_refused_and_memory_stays_bounded(target):
    target.alive()
    huge = b"{" + b" " * OVERSIZED + b"}"
    for round_ in range(size(ci=6, full=40)):
        kind = KINDS[round_ % len(KINDS)]
        headers = signed_headers(kind, SECRET, huge, TOPICS[kind][0])
        try:
            response = target.post(kind, huge, headers)
        except httpx.TransportError:
            target.refused += 1  # the daemon closed the connection mid-upload: refused
            continue
        assert response.status_code == 413, response.text

        def chunks() -> Iterator[bytes]:
            for _ in range(OVERSIZED // 65536):
                yield b" " * 65536

        try:
            chunked = target.client.post(f"{target.daemon.webhooks}/webhooks/{kind}",
                                         content=chunks(), headers=headers)
        except httpx.TransportError:
            target.refused += 1
            continue
        assert chunked.status_code == 413, chunked.text
    target.alive()
    grown = rss_kib(target.daemon.process.proc.pid) - target.rss_start
    assert grown < RSS_BOUND_MIB * 1024, f"the daemon grew by {grown} KiB"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc for VmRSS")
def test_statuses_seen(target):
    # A record for the report, and proof the fuzzers reached both sides of the signature check.
    inbox = target.daemon.query("SELECT parked, processed_at IS NOT NULL, count(*) FROM inbox "
                                "GROUP BY 1, 2")
    print("webhook statuses:", dict(sorted(target.statuses.items())),
          "inbox (parked, processed, rows):", inbox, "refused uploads:", target.refused,
          "RSS growth KiB:", rss_kib(target.daemon.process.proc.pid) - target.rss_start)
    assert target.statuses.get(401) and target.statuses.get(200)


# -- atheris --------------------------------------------------------------------------------------

try:
    import atheris  # noqa: F401 - optional: only whether it imports matters here
except ImportError:
    ATHERIS = False
else:
    ATHERIS = True

# libFuzzer runs per target: a short smoke run in CI, a long one in the full run.
ATHERIS_RUNS = {"parse_event": size(2000, 200_000), "stock_csv": size(2000, 200_000),
                "config": size(500, 50_000)}


@pytest.mark.skipif(not ATHERIS, reason="atheris is not installed (pip install atheris)")
@pytest.mark.parametrize("fuzz_target", sorted(ATHERIS_RUNS))
def test_atheris_runs_clean(tmp_path, fuzz_target):
    runs = ATHERIS_RUNS[fuzz_target]
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.fuzz_atheris", fuzz_target, f"-runs={runs}",
         f"-artifact_prefix={tmp_path}/", "-seed=1" if not FULL else "-seed=0"],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=3600, check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert f"Done {runs} runs" in output, output[-2000:]
