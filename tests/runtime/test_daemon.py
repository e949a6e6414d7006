"""`storesync run` as ops and channels see it: a real process, real sockets, real signals."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.runtime.harness import Daemon, Sandbox, order_body, sign, wait_until

SKUS = {"MUG": 10, "CAP": 5}


@pytest.fixture
def shop(tmp_path):
    sandbox = Sandbox(tmp_path, "shop")
    sandbox.seed({sku: 0 for sku in SKUS})
    yield sandbox
    sandbox.stop()


@pytest.fixture
def daemon(tmp_path, shop):
    d = Daemon(tmp_path, [shop], skus=SKUS)
    d.start()
    shop.send_webhooks_to(f"{d.webhooks}/webhooks/shop")
    for sku, qty in SKUS.items():
        d.set_stock(sku, qty)
    yield d
    if d.process and d.process.proc.poll() is None:
        d.stop()


@pytest.fixture
def stocked(tmp_path, shop):
    """Start a daemon on `shop` with these options and SKUS counted in; stopped at the end.
    The sandbox sends it no webhooks: orders come by poll or sweep."""
    started: list[Daemon] = []

    def start(**options) -> Daemon:
        d = Daemon(tmp_path, [shop], skus=SKUS, **options).start()
        started.append(d)
        for sku, qty in SKUS.items():
            d.set_stock(sku, qty)
        return d

    yield start
    for d in started:
        d.stop()


def post_webhook(
    daemon: Daemon, sandbox: Sandbox, body: bytes, *, delivery: str, secret: str | None = None
) -> httpx.Response:
    return httpx.post(
        f"{daemon.webhooks}/webhooks/{sandbox.name}",
        content=body,
        timeout=10,
        headers={
            "X-Reference-Topic": "order.created",
            "X-Reference-Delivery": delivery,
            "X-Reference-Signature": sign(secret or sandbox.webhook_secret, body),
            "Content-Type": "application/json",
        },
    )


def deliver_order(daemon: Daemon, sandbox: Sandbox, order_id: str, sku: str = "MUG") -> None:
    """Post one signed order webhook and wait until the order is stored."""
    body = order_body(order_id, sku, 1, updated_at="2026-11-01T10:00:00.000000Z")
    assert post_webhook(daemon, sandbox, body, delivery=f"d-{order_id}").status_code == 200
    wait_until(
        lambda: daemon.query("SELECT 1 FROM orders WHERE external_id = ?", (order_id,)),
        what=f"order {order_id} to be stored",
    )


def stored_orders(daemon: Daemon) -> int:
    return daemon.query("SELECT count(*) FROM orders")[0][0]


def test_signed_webhook_is_stored_and_applied(daemon, shop):
    body = order_body("W-1", "MUG", 2, updated_at="2026-11-01T10:00:00.000000Z")
    response = post_webhook(daemon, shop, body, delivery="d-1")
    assert response.status_code == 200, response.text
    order = wait_until(
        lambda: (
            httpx.get(f"{daemon.ops}/orders/shop/W-1").json()
            if httpx.get(f"{daemon.ops}/orders/shop/W-1").status_code == 200
            else None
        ),
        what="the order to be applied",
    )
    assert order["lines"][0]["sku"] == "MUG" and order["status"] == "open"
    # Its stock is committed, and the channel is told the lower number.
    wait_until(lambda: shop.levels()["MUG"] == 8, what="the sandbox to show MUG = 8")


def test_bad_signature_gets_401_and_stores_nothing(daemon, shop):
    body = order_body("W-2", "MUG", 1, updated_at="2026-11-01T10:00:00.000000Z")
    response = post_webhook(daemon, shop, body, delivery="d-2", secret="not-the-secret")
    assert response.status_code == 401
    valid = post_webhook(daemon, shop, body, delivery="d-3")
    assert valid.status_code == 200
    response = httpx.post(
        f"{daemon.webhooks}/webhooks/shop",
        content=body.replace(b'"quantity": 1', b'"quantity": 9'),
        headers={
            "X-Reference-Topic": "order.created",
            "X-Reference-Delivery": "d-4",
            "X-Reference-Signature": sign(shop.webhook_secret, body),
        },
    )
    assert response.status_code == 401
    assert daemon.query("SELECT delivery_key FROM inbox ORDER BY delivery_key") == [("d-3",)]
    assert httpx.post(f"{daemon.webhooks}/webhooks/nope", content=b"{}").status_code == 404


def test_ten_concurrent_copies_of_a_delivery_store_one_row_and_one_order(daemon, shop):
    body = order_body("W-5", "CAP", 1, updated_at="2026-11-01T10:00:00.000000Z")
    with ThreadPoolExecutor(10) as pool:
        codes = list(
            pool.map(
                lambda _: post_webhook(daemon, shop, body, delivery="dup-1").status_code, range(10)
            )
        )
    assert codes == [200] * 10
    wait_until(lambda: stored_orders(daemon) == 1, what="the order")
    assert daemon.query("SELECT count(*) FROM inbox WHERE delivery_key = 'dup-1'") == [(1,)]
    assert daemon.query("SELECT count(*) FROM orders") == [(1,)]


def test_sigterm_under_load_exits_0_and_loses_no_acknowledged_webhook(daemon, shop):
    acked: list[str] = []
    stop_sending = threading.Event()
    lock = threading.Lock()

    def sender(worker: int) -> None:
        n = 0
        while not stop_sending.is_set():
            delivery = f"load-{worker}-{n}"
            body = order_body(delivery, "MUG", 1, updated_at="2026-11-01T10:00:00.000000Z")
            try:
                if post_webhook(daemon, shop, body, delivery=delivery).status_code == 200:
                    with lock:
                        acked.append(delivery)
            except httpx.HTTPError:
                pass  # refused while stopping: the channel would retry later
            n += 1

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 40, what="40 acknowledged webhooks")
    started = time.monotonic()
    code = daemon.stop()
    elapsed = time.monotonic() - started
    stop_sending.set()
    for t in threads:
        t.join()
    assert code == 0, daemon.log()[-2000:]
    assert elapsed < 30
    stored = {row[0] for row in daemon.query("SELECT delivery_key FROM inbox")}
    assert set(acked) <= stored, sorted(set(acked) - stored)[:5]
    # After a restart every acknowledged delivery is processed into an order.
    daemon.start()
    wait_until(
        lambda: {r[0] for r in daemon.query("SELECT external_id FROM orders")} >= set(acked),
        what="every acknowledged webhook to become an order",
    )


def test_sigterm_during_a_slow_poll_ends_it_quietly_within_the_drain(stocked, shop):
    """A poll still waiting on the channel at SIGTERM is cut short at the drain bound: exit 0,
    and every log line stays one JSON object (no scheduler traceback, no bare library line)."""
    daemon = stocked(sync_toml='drain_timeout = "1s"')
    shop.faults(latency_s=60)  # every call now hangs far past the drain
    wait_until(lambda: shop.state()["requests"]["in_flight"] > 0, what="a call to the shop")
    started = time.monotonic()
    code = daemon.stop()
    elapsed = time.monotonic() - started
    shop.faults(latency_s=0)
    assert code == 0, daemon.log()[-2000:]
    assert elapsed < 15, f"stop took {elapsed:.1f} s with a 1 s drain"
    lines = [line for line in daemon.log().splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, not_json[:5]
    events = [json.loads(line) for line in lines]
    assert not [e for e in events if "exception" in e or "Traceback" in e.get("event", "")]
    assert events[-1]["event"] == "stopped"


def test_sighup_with_a_broken_config_keeps_running_and_says_why(daemon, shop):
    good = daemon.config.read_text()
    daemon.config.write_text(good + "\n[stock]\nbuffer = -3\n")
    daemon.process.signal(signal.SIGHUP)
    reload = wait_until(
        lambda: (r := daemon.status()["config"]["last_reload"])["at"] and r,
        what="the reload to be attempted",
    )
    assert reload["ok"] is False
    assert any("stock.buffer" in e for e in reload["errors"]), reload
    assert daemon.status()["channels"]["shop"]["state"] == "ok"
    daemon.set_stock("MUG", 4)  # still working on the old config
    wait_until(lambda: shop.levels()["MUG"] == 4, what="pushes to keep flowing")
    # A good config is applied without a restart.
    daemon.config.write_text(good + "\n[stock]\nbuffer = 1\n")
    daemon.process.signal(signal.SIGHUP)
    wait_until(lambda: daemon.status()["config"]["last_reload"]["ok"], what="a good reload")
    wait_until(lambda: shop.levels()["MUG"] == 3, what="the new buffer to be pushed")


def test_ready_is_sent_only_after_the_listeners_are_bound(tmp_path, shop):
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(30)
    d = Daemon(tmp_path, [shop], skus=SKUS)
    d.start(wait=False, NOTIFY_SOCKET=str(path))
    try:
        messages = []
        while not any("READY=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        # At the moment READY=1 arrives, both listeners accept connections.
        for port in (d.webhook_port, d.ops_port):
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=" in ready and "channels ok" in ready
        d.stop()
        listener.settimeout(5)
        rest = []
        try:
            while True:
                rest.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
        assert any("STOPPING=1" in m for m in rest)
    finally:
        listener.close()
        if d.process and d.process.proc.poll() is None:
            d.stop()


def test_retry_after_is_honoured_channel_wide(daemon, shop):
    wait_until(lambda: shop.levels()["MUG"] == 10, what="the first push")
    shop.faults(storm_s=1.0, storm_retry_after_s=3)
    daemon.set_stock("MUG", 7)
    wait_until(lambda: shop.levels()["MUG"] == 7, timeout=30, what="the push after the storm")
    log = shop.control("GET", "/requests")["requests"]
    api = [r for r in log if not r["path"].startswith("/_control")]
    at_429 = next(r["at"] for r in api if r["status"] == 429)
    # Requests already on the wire when the first 429 came back may land just after it; any
    # request sent after it must wait for Retry-After, channel-wide (polls included).
    in_flight = 0.1
    sent_after = [r for r in api if r["at"] > at_429 + in_flight]
    assert sent_after, "no request after the 429"
    assert min(r["at"] for r in sent_after) >= at_429 + 3 - 0.05, (at_429, sent_after[:3])
    assert not [r for r in sent_after if r["status"] == 429]  # no self-inflicted 429s


def test_a_channel_failing_for_long_keeps_its_push_and_delivers_it_when_back(tmp_path):
    good, bad = Sandbox(tmp_path, "good"), Sandbox(tmp_path, "bad")
    d = Daemon(tmp_path, [good, bad], skus={"MUG": 0}, sync_toml="push_max_attempts = 3")
    try:
        for sandbox in (good, bad):
            sandbox.seed({"MUG": 0})
        d.start()

        def stock_calls() -> int:
            log = bad.control("GET", "/requests")["requests"]
            return sum(1 for r in log if r["path"] == "/stock/batch")

        # Let the start-up push land first, so only the failing value's calls are counted.
        wait_until(
            lambda: d.query("SELECT 1 FROM outbox WHERE channel = 'bad' AND state = 'done'"),
            what="the first push to the bad channel",
        )
        before = stock_calls()
        bad.faults(error_rate=1.0)
        d.set_stock("MUG", 6)
        wait_until(lambda: good.levels()["MUG"] == 6, what="the good channel to get its number")
        # Far more failed calls than the row's 3 attempts: the channel is down, not the row.
        wait_until(lambda: stock_calls() - before > 3 * 4, timeout=60,
                   what="the failing channel to refuse more calls than three attempts make")
        status = d.status()["channels"]
        rows = d.query("SELECT state, value FROM outbox WHERE channel = 'bad' "
                       "AND state NOT IN ('done', 'superseded')")
        bad.faults(error_rate=0.0)
        wait_until(lambda: bad.levels()["MUG"] == 6, timeout=30,
                   what="the waiting number on the channel once it answers again")
        after = d.status()["channels"]
    finally:
        d.stop()
        good.stop()
        bad.stop()
    assert status["bad"]["state"] == "degraded" and status["bad"]["outbox"]["dead"] == 0
    assert status["good"]["state"] == "ok"
    assert [(state, int(value)) for state, value in rows] in ([("pending", 6)], [("inflight", 6)])
    assert after["bad"]["outbox"]["dead"] == 0 and after["bad"]["state"] == "ok"


def test_metrics_parse_and_status_matches_its_documented_shape(daemon, shop):
    deliver_order(daemon, shop, "M-1")
    text = httpx.get(f"{daemon.ops}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "storesync_webhooks_received",
        "storesync_orders_applied",
        "storesync_pushes",
        "storesync_push_latency_seconds",
        "storesync_outbox_depth",
        "storesync_channel_state",
    ):
        assert name in families, sorted(families)
    status = daemon.status()
    assert set(status) >= {
        "version",
        "started_at",
        "uptime_s",
        "ready",
        "store",
        "config",
        "inbox",
        "channels",
        "alerts",
        "shipments_folder",
        "recent_events",
    }
    channel = status["channels"]["shop"]
    assert set(channel) >= {
        "kind",
        "state",
        "state_reason",
        "last_poll_at",
        "last_webhook_at",
        "cursor_lag_s",
        "outbox",
        "quota",
        "recent_errors",
    }
    assert set(channel["outbox"]) >= {"depth", "dead", "oldest_age_s"}
    assert channel["last_webhook_at"] is not None


def test_storesync_status_shows_every_channel(daemon, shop):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(daemon.config), "status", "--json"],
        capture_output=True,
        text=True,
        env=daemon.env,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["channels"]) == {"shop"}
    table = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(daemon.config), "status"],
        capture_output=True,
        text=True,
        env=daemon.env,
        timeout=30,
    )
    assert "shop (reference)" in table.stdout and "ok" in table.stdout
    shop.stop()  # the channel goes away; after enough failed polls it is degraded
    wait_until(
        lambda: daemon.status()["channels"]["shop"]["state"] == "degraded",
        what="the channel to be degraded",
    )
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(daemon.config), "status"],
        capture_output=True,
        text=True,
        env=daemon.env,
        timeout=30,
    )
    assert result.returncode == 1
    daemon.stop()
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(daemon.config), "status"],
        capture_output=True,
        text=True,
        env=daemon.env,
        timeout=30,
    )
    assert result.returncode == 3 and "cannot reach" in result.stderr


def test_secrets_never_reach_the_log_or_status(daemon, shop):
    deliver_order(daemon, shop, "S-1")
    status_text = httpx.get(f"{daemon.ops}/status").text
    daemon.stop()
    everything = daemon.log() + status_text
    for secret in (shop.api_key, shop.webhook_secret, daemon.ops_token):
        assert secret not in everything


def test_a_poisoned_delivery_is_parked_and_blocks_nothing(daemon, shop):
    garbage = b'{"id": "P-1", "lines": "not a list"}'
    assert post_webhook(daemon, shop, garbage, delivery="poison").status_code == 200
    good = order_body("G-1", "CAP", 1, updated_at="2026-11-01T10:00:00.000000Z")
    assert post_webhook(daemon, shop, good, delivery="good").status_code == 200
    wait_until(lambda: stored_orders(daemon) == 1, what="the good order despite the poison")
    inbox = wait_until(
        lambda: (i := daemon.status()["inbox"])["parked"] == 1 and i,
        what="the poisoned delivery to be parked",
    )
    assert inbox["pending"] == 0
    (error,) = daemon.query("SELECT error FROM inbox WHERE delivery_key = 'poison'")[0]
    assert error.startswith("PermanentError")
    events = daemon.status()["recent_events"]
    assert any(e["kind"] == "parked_webhook" for e in events)


def test_refused_credentials_pause_the_channel_until_a_reload_fixes_them(tmp_path, shop):
    shop.seed({"MUG": 0})
    d = Daemon(tmp_path, [shop], skus={"MUG": 0}, key_files=True)
    d.start()
    try:
        wait_until(lambda: d.status()["channels"]["shop"]["last_poll_at"], what="a first poll")
        shop.control("PUT", "/config", {"api_key": "rotated-key-2"})  # the merchant rotated it
        d.set_stock("MUG", 9)
        wait_until(
            lambda: d.status()["channels"]["shop"]["state"] == "needs_reauth", what="needs_reauth"
        )
        assert d.status()["channels"]["shop"]["outbox"]["depth"] >= 1  # kept, not dead
        assert d.query("SELECT count(*) FROM outbox WHERE state = 'dead'") == [(0,)]
        (tmp_path / "key-shop.txt").write_text("rotated-key-2\n")
        d.process.signal(signal.SIGHUP)
        wait_until(lambda: shop.levels()["MUG"] == 9, what="the outbox to drain after reload")
        assert d.status()["channels"]["shop"]["state"] == "ok"
        assert d.log().count('"needs_reauth"') >= 1
    finally:
        d.stop()


def test_watchdog_pings_come_from_the_running_loop(tmp_path, shop):
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(30)
    d = Daemon(tmp_path, [shop], skus=SKUS)
    # WATCHDOG_USEC = 1 s: systemd wants a ping at least every second, so one every half second.
    d.start(wait=False, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="1000000")
    try:
        pings = []
        while len(pings) < 4:
            message = listener.recv(4096).decode()
            if "WATCHDOG=1" in message:
                pings.append(time.monotonic())
        gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
        assert all(gap < 1.0 for gap in gaps), gaps
    finally:
        listener.close()
        d.stop()


def test_a_failing_channel_logs_its_state_change_once_not_per_poll(daemon, shop):
    shop.stop()
    wait_until(
        lambda: daemon.status()["channels"]["shop"]["state"] == "degraded",
        what="the channel to be degraded",
    )

    def failed_polls() -> float:
        text = httpx.get(f"{daemon.ops}/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "storesync_polls"
            for sample in family.samples
            if sample.labels.get("result") == "error" and sample.name.endswith("_total")
        )

    wait_until(lambda: failed_polls() >= 8, timeout=30, what="several more failed polls")
    changes = [
        line
        for line in daemon.log().splitlines()
        if '"channel state changed"' in line and '"degraded"' in line
    ]
    assert len(changes) == 1, changes


def test_status_flags_webhooks_that_went_silent(stocked, shop):
    # The sandbox sends no webhooks at all; orders still arrive by poll.
    d = stocked(sync_toml='webhook_silence = "1s"')
    wait_until(lambda: shop.levels()["MUG"] == 10, what="the first push")
    assert d.status()["channels"]["shop"]["webhook_silent"] is False
    wait_until(lambda: d.status()["uptime_s"] > 1.5, what="the silence window to pass")
    shop.buy({"MUG": 1})
    wait_until(
        lambda: d.status()["channels"]["shop"]["webhook_silent"],
        what="the silent webhook to be flagged",
    )


def test_the_reconcile_sweep_backfills_orders_that_polls_and_webhooks_missed(stocked, shop):
    # No webhooks, and the order poll runs once at start then hourly: only the sweep can see it.
    d = stocked(poll_interval="1h", reconcile_interval="2s")
    wait_until(lambda: d.status()["channels"]["shop"]["last_poll_at"], what="the first poll")
    wait_until(lambda: shop.levels()["CAP"] == 5, what="the stock to reach the store")
    order = shop.buy({"CAP": 2})
    wait_until(
        lambda: d.query("SELECT 1 FROM orders WHERE external_id = ?", (str(order["id"]),)),
        timeout=30,
        what="the sweep to backfill the order",
    )
    assert '"reconcile found orders polls and webhooks had missed"' in d.log()


def test_a_sweep_that_reads_an_amazon_order_before_the_next_poll_does_not_cry_missed(tmp_path):
    # Amazon's poll reads `order_settle` behind the clock and, here, only once an hour: the
    # sweep every 5 s reads the order first. That is the sweep being early, not the poll losing
    # it, so ops get an info line, not a warning.
    amz = Sandbox(tmp_path, "amz", kind="amazon")
    d = Daemon(tmp_path, [amz], skus=SKUS, poll_interval="1h", reconcile_interval="5s",
               channel_options={"amz": {"order_settle": "4s"}})
    try:
        amz.control("PUT", "/config", {"min_age_s": 3})
        amz.seed({sku: 0 for sku in SKUS})
        d.start()
        wait_until(lambda: d.status()["channels"]["amz"]["last_poll_at"], what="the first poll")
        d.set_stock("MUG", 10)
        wait_until(lambda: amz.levels()["MUG"] == 10, timeout=30, what="the stock to reach Amazon")
        order = amz.buy({"MUG": 1})
        wait_until(
            lambda: d.query("SELECT 1 FROM orders WHERE external_id = ?", (str(order["id"]),)),
            timeout=30, what="the sweep to read the order",
        )
        # The sweep logs once its whole read is over, a moment after the order committed.
        wait_until(lambda: '"reconcile read orders before the next poll could"' in d.log(),
                   what="the sweep's info line")
        assert "polls and webhooks had missed" not in d.log()
    finally:
        d.stop()
        amz.stop()


def test_a_polled_order_with_impossible_numbers_is_refused_and_holds_up_nothing(stocked, shop):
    # No webhooks: polls are the only way in, and the garbage order comes first on its page.
    d = stocked(poll_interval="1s")
    wait_until(lambda: shop.levels()["MUG"] == 10, what="the stock to reach the channel")
    # A custom line (no SKU) is not checked against stock, so the channel takes any number.
    garbage = shop.control("POST", "/orders", {"lines": [{"sku": None, "quantity": 10**30}]})
    fine = shop.buy({"MUG": 1})
    wait_until(
        lambda: d.query("SELECT 1 FROM orders WHERE external_id = ?", (str(fine["id"]),)),
        timeout=30, what="the order after the garbage one to be polled in",
    )
    assert not d.query("SELECT 1 FROM orders WHERE external_id = ?", (str(garbage["id"]),))
    refused = d.query("SELECT message FROM events WHERE kind = 'order_refused'")
    assert refused and str(garbage["id"]) in refused[0][0], refused
    wait_until(lambda: shop.levels()["MUG"] == 9, what="the sale to lower the channel")
    assert d.process is not None and d.process.running
    assert "Traceback" not in d.log()
