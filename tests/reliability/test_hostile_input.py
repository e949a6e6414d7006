"""Hostile input: fuzzed webhooks, webhook bodies, stock files and config files.

- The webhook endpoint of a real daemon, over loopback, for Shopify and WooCommerce: random,
  truncated, oversized, wrongly typed and deeply nested bodies and headers, unsigned, wrongly
  signed and correctly signed. Never a 5xx, the daemon stays ready, nothing is stored without a
  valid signature, and its memory stays bounded.
- Each connector's `parse_event`: only PermanentError (a body it cannot read) may escape.
- `storesync stock import` files: only line-numbered errors, never an exception.
- Config files: only ConfigError, never another exception.

Hypothesis drives every target (`derandomize` in CI, so a run replays). The CI subset tries
a few hundred inputs per target; STORESYNC_RELIABILITY=full tries thousands. (A coverage-guided
atheris harness for the in-process targets is not on main yet.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import ConfigError, load_config
from agent.stock_csv import parse_counts
from agent.sync.factory import build_connector
from connectors.base import PermanentError
from tests.reliability.scale import FULL, size
from tests.runtime.harness import Daemon, Sandbox, wait_until

FUZZ = settings(
    max_examples=size(ci=150, full=3000), deadline=None, derandomize=not FULL,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RSS_GROWTH_LIMIT_MIB = 64
NESTING = 100_000  # far past json's recursion limit

# -- what hostile input looks like ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.sampled_from(["id", "line_items", "sku", "quantity", "status", "updated_at",
                         "date_modified_gmt", "created_at", "cancelled_at", "total"])
        | st.text(max_size=10), inner, max_size=6),
    max_leaves=30,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()).map(lambda b: b[: len(b) // 2]),
    st.binary(max_size=400),
    st.sampled_from([b"", b"null", b'{"id": 1e999}', b'{"id": "\\ud800"}', b"[" * 2000]),
)
# Bodies nested far past json's recursion limit (tried apart: their repr is too long for a
# Hypothesis report).
DEEP = {"array": b"[" * NESTING + b"]" * NESTING,
        "object": b'{"id":' * 5000 + b"1" + b"}" * 5000}
# Printable ASCII without surrounding spaces: what an HTTP client will put on the wire at all.
header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip)
TOPICS = {"shop": ["orders/create", "orders/updated", "orders/cancelled", "app/uninstalled"],
          "woo": ["order.created", "order.updated", "order.deleted", "product.updated"]}


def sign(secret: str, body: bytes) -> str:
    """Both channels sign with base64 HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def channel_headers(channel: str, topic: str, signature: str | None) -> dict[str, str]:
    """A delivery's headers as the channel sends them, with `signature` (None: unsigned)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if channel == "shop":
        headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                   "X-Shopify-Event-Id": str(uuid.uuid4()), "X-Shopify-Triggered-At": now,
                   "X-Shopify-Shop-Domain": "storesync-sandbox.myshopify.com"}
        if signature is not None:
            headers["X-Shopify-Hmac-Sha256"] = signature
    else:
        resource, _, event = topic.partition(".")
        headers = {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource,
                   "X-WC-Webhook-Event": event, "X-WC-Webhook-ID": "7",
                   "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
                   "X-WC-Webhook-Source": "https://shop.example/"}
        if signature is not None:
            headers["X-WC-Webhook-Signature"] = signature
    headers["Content-Type"] = "application/json"
    return headers


# -- the daemon ------------------------------------------------------------------------------------


class Target:
    """A daemon with a Shopify and a WooCommerce channel, and what was sent to it."""

    def __init__(self, daemon: Daemon, secrets: dict[str, str]) -> None:
        self.daemon = daemon
        self.secrets = secrets
        self.signed_accepted = 0
        self.client = httpx.Client(timeout=30)

    def post(self, channel: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return self.client.post(f"{self.daemon.webhooks}/webhooks/{channel}", content=body,
                                headers=headers)

    def inbox_rows(self) -> int:
        return int(self.daemon.query("SELECT count(*) FROM inbox")[0][0])

    def rss_mib(self) -> float:
        assert self.daemon.process is not None
        status = Path(f"/proc/{self.daemon.process.proc.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))
        return kib / 1024


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("hostile")
    shop = Sandbox(tmp, "shop", kind="shopify", webhook_secret="shop-secret-for-fuzzing")
    woo = Sandbox(tmp, "woo", kind="woocommerce", webhook_secret="woo-secret-for-fuzzing")
    daemon = Daemon(tmp, [shop, woo], skus={"MUG": 5}, poll_interval="1h",
                    reconcile_interval="1h").start()
    try:
        target = Target(daemon, {"shop": shop.webhook_secret, "woo": woo.webhook_secret})
        yield target
        target.client.close()
    finally:
        daemon.stop()
        shop.stop()
        woo.stop()


@FUZZ
@given(channel=st.sampled_from(["shop", "woo"]), body=bodies, data=st.data(),
       how=st.sampled_from(["unsigned", "wrong secret", "garbage signature", "tampered"]))
def test_unsigned_or_wrongly_signed_webhooks_get_4xx_and_store_nothing(
    target: Target, channel: str, body: bytes, data: st.DataObject, how: str
) -> None:
    topic = data.draw(st.sampled_from(TOPICS[channel]) | header_values)
    signature = {
        "unsigned": None,
        "wrong secret": sign("not-the-secret", body),
        "garbage signature": data.draw(header_values),
        "tampered": sign(target.secrets[channel], body + b" "),
    }[how]
    headers = channel_headers(channel, topic if topic.strip() else "orders/create", signature)
    extra = data.draw(st.dictionaries(
        st.sampled_from(["X-Shopify-Event-Id", "X-WC-Webhook-Delivery-ID", "Content-Type",
                         "X-Shopify-Triggered-At", "X-Junk"]), header_values, max_size=2))
    headers.update(extra)
    before = target.inbox_rows()
    response = target.post(channel, headers, body)
    assert response.status_code < 500, (how, response.status_code, response.text)
    if channel == "woo" and body.startswith(b"webhook_id="):
        return  # WooCommerce's unsigned ping, answered and never stored
    assert 400 <= response.status_code < 500, (how, response.status_code)
    assert target.inbox_rows() == before


CHANNEL_TOPICS = [(channel, topic) for channel, topics in TOPICS.items() for topic in topics]


@FUZZ
@given(channel_topic=st.sampled_from(CHANNEL_TOPICS), body=bodies)
def test_correctly_signed_garbage_never_gets_a_5xx_nor_stops_the_daemon(
    target: Target, channel_topic: tuple[str, str], body: bytes
) -> None:
    channel, topic = channel_topic
    headers = channel_headers(channel, topic, sign(target.secrets[channel], body))
    response = target.post(channel, headers, body)
    assert response.status_code < 500, (response.status_code, response.text, body[:200])


@pytest.mark.parametrize("shape", sorted(DEEP))
@pytest.mark.parametrize("channel", ["shop", "woo"])
def test_deeply_nested_signed_bodies_never_get_a_5xx(target: Target, channel: str,
                                                     shape: str) -> None:
    body = DEEP[shape]
    topic = TOPICS[channel][1]
    response = target.post(channel, channel_headers(channel, topic, sign(target.secrets[channel],
                                                                         body)), body)
    assert response.status_code < 500, (response.status_code, response.text)


def test_after_the_fuzzing_the_daemon_is_ready_and_its_memory_bounded(target: Target) -> None:
    # Runs after the two fuzz tests in this module (pytest keeps file order). Two equal rounds
    # of oversized and unsigned bodies: the first may grow the heap (the allocator keeps what it
    # freed), the second must find it already big enough. Growth that went on round after
    # round would be a leak.
    big = b'{"id": 1, "junk": "' + b"x" * (3 * 1024 * 1024) + b'"}'

    def round_of_abuse() -> None:
        for _ in range(size(ci=20, full=200)):
            headers = channel_headers("shop", "orders/create", sign(target.secrets["shop"], big))
            assert target.post("shop", headers, big).status_code == 413
        for _ in range(size(ci=200, full=2000)):
            body = json.dumps({"id": str(uuid.uuid4()), "line_items": "x" * 2000}).encode()
            target.post("woo", channel_headers("woo", "order.updated", None), body)

    start = target.rss_mib()
    round_of_abuse()
    after_first = target.rss_mib()
    round_of_abuse()
    after_second = target.rss_mib()
    print(f"daemon RSS: {start:.1f} MiB, {after_first:.1f} after one round, "
          f"{after_second:.1f} after two")
    assert after_second - after_first < RSS_GROWTH_LIMIT_MIB / 4, (start, after_first,
                                                                   after_second)
    assert after_second - start < RSS_GROWTH_LIMIT_MIB * 2, (start, after_first, after_second)
    wait_until(target.daemon.ready, what="the daemon to answer /readyz")
    assert target.daemon.process is not None and target.daemon.process.running


# -- in-process targets ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def connectors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One connector of every kind, built from a config as the daemon builds them."""
    tmp = tmp_path_factory.mktemp("connectors")
    config_path = tmp / "storesync.toml"
    config_path.write_text(CONNECTOR_CONFIG)
    config_path.chmod(0o600)
    config = load_config(config_path)
    built = {name: build_connector(name, ch, config.sync) for name, ch in config.channels.items()}
    yield built

    async def close() -> None:
        for connector in built.values():
            await connector.aclose()

    asyncio.run(close())


CONNECTOR_CONFIG = """
[channels.shop]
kind = "shopify"
shop = "fuzz.myshopify.com"
api_url = "http://127.0.0.1:9/admin/api/2026-07"
access_token = "shpat_fuzz"
webhook_secret = "s"
[channels.woo]
kind = "woocommerce"
api_url = "http://127.0.0.1:9"
consumer_key = "ck_fuzz"
consumer_secret = "cs_fuzz"
webhook_secret = "s"
[channels.amazon]
kind = "amazon"
api_url = "http://127.0.0.1:9"
seller_id = "A1"
marketplace_ids = ["ATVPDKIKX0DER"]
lwa_client_id = "c"
lwa_client_secret = "s"
refresh_token = "r"
[channels.ebay]
kind = "ebay"
api_url = "http://127.0.0.1:9"
client_id = "c"
client_secret = "s"
refresh_token = "r"
"""
ALL_TOPICS = [t for topics in TOPICS.values() for t in topics]


@FUZZ
@given(name=st.sampled_from(["shop", "woo", "amazon", "ebay"]), body=bodies,
       topic=st.sampled_from(ALL_TOPICS) | header_values,
       headers=st.dictionaries(header_values, header_values, max_size=4))
def test_parse_event_raises_only_permanent_error(
    connectors: dict[str, Any], name: str, body: bytes, topic: str, headers: dict[str, str]
) -> None:
    try:
        connectors[name].parse_event(topic, headers, body)
    except PermanentError:
        pass


@FUZZ
@given(text=st.one_of(
    st.text(max_size=300),
    st.lists(st.lists(st.text(max_size=12) | st.integers().map(str), max_size=4), max_size=8)
    .map(lambda rows: "sku,location,qty\n" + "\n".join(",".join(r) for r in rows)),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.just("sku,location,qty\n" + "x" * 200_000 + ",main,1\n"),
))
def test_stock_files_give_line_numbered_errors_not_exceptions(text: str) -> None:
    rows, errors = parse_counts(text, locations=["main"], bundles=["GIFT"])
    for error in errors:
        assert error.line >= 1 and error.message


toml_scalars = st.one_of(st.integers().map(str), st.text(max_size=20).map(json.dumps),
                         st.booleans().map(lambda b: str(b).lower()), st.just("[1, 'x']"),
                         st.just("{ env = \"NOPE\" }"), st.just("{ file = \"/nonexistent\" }"))


@FUZZ
@given(text=st.one_of(
    st.text(max_size=300),
    st.lists(st.tuples(
        st.sampled_from(["[agent]", "[sync]", "[stock]", "[channels.a]", "[skus.X]",
                         "[[locations]]", "[[bundles]]", "[alerts]", "[channels.a.x]", ""]),
        st.sampled_from(["kind", "api_url", "buffer", "ops_listen", "database", "name",
                         "components", "poll_interval", "sku", "reorder_point", "x"]),
        toml_scalars), max_size=8)
    .map(lambda lines: "\n".join(f"{h}\n{k} = {v}" for h, k, v in lines)),
))
def test_config_files_give_config_errors_not_exceptions(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "storesync.toml"
    path.write_text(text, encoding="utf-8", errors="replace")
    path.chmod(0o600)
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        assert exc.issues and all(str(issue) for issue in exc.issues)
