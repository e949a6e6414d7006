"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

A real agent serves it, with two channels on sandboxes. The page must show both channels ok,
take a new order into "recent orders" without a reload, show a channel going degraded during an
outage without a reload, retry dead letters with the ops token typed into it, fit a phone's
screen, and load nothing from anywhere but the agent. Screenshots go to the test's folder, and
to $STORESYNC_SCREENSHOTS when set (the README's come from `STORESYNC_SCREENSHOTS=docs`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.runtime.harness import Daemon, Sandbox, wait_until

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 20_000

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def save(page: object, tmp_path: Path, name: str) -> None:
    """A screenshot into the test's folder, and into $STORESYNC_SCREENSHOTS when set."""
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
    target = os.environ.get("STORESYNC_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / f"{name}.png")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Daemon, Sandbox, Sandbox]]:
    shop = Sandbox(tmp_path, "shop")
    market = Sandbox(tmp_path, "market", api_key="ref-api-key-2")
    skus = {"MUG": 40, "CAP": 25, "TEE": 0}
    for sandbox in (shop, market):
        sandbox.seed(skus)
    daemon = Daemon(tmp_path, [shop, market], skus=skus, poll_interval="1s",
                    sync_toml="push_max_attempts = 2").start()
    for sku, qty in skus.items():
        daemon.set_stock(sku, qty)
    try:
        yield daemon, shop, market
    finally:
        daemon.stop()
        shop.stop()
        market.stop()


def test_the_dashboard_shows_live_state_on_desktop_and_phone(agent, tmp_path: Path) -> None:
    daemon, shop, market = agent
    origin = urlsplit(daemon.ops).netloc
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            elsewhere: list[str] = []
            page.on("request", lambda r: elsewhere.append(r.url)
                    if urlsplit(r.url).netloc != origin else None)
            page.goto(f"{daemon.ops}/")
            for name in ("shop", "market"):
                page.wait_for_selector(f'[data-channel="{name}"] [data-state="ok"]',
                                       timeout=WAIT_MS)
            reloads: list[str] = []
            page.on("framenavigated", lambda frame: reloads.append(frame.url))

            # A sale on one store shows in recent orders, by the page's own refresh.
            order = shop.buy({"MUG": 2})
            page.wait_for_function(
                "id => document.getElementById('orders').textContent.includes(id)",
                arg=str(order["id"]), timeout=WAIT_MS)
            wait_until(lambda: daemon.converged(market, ["MUG"]), what="the sale on market")
            wait_until(lambda: daemon.query("SELECT 1 FROM orders WHERE external_id = ?",
                                            (str(order["id"]),)), what="the order stored")
            shipped = daemon.post("/shipments", {"channel": "shop", "order_id": str(order["id"]),
                                                 "carrier": "UPS", "tracking_number": "1Z999AA1"})
            assert shipped.status_code == 201, shipped.text
            page.wait_for_function(
                "() => document.getElementById('shipments').textContent.includes('1Z999AA1')",
                timeout=WAIT_MS)
            # TEE has none left: at risk (available 0, at the buffer).
            assert "TEE" in page.inner_text("#risk")
            save(page, tmp_path, "dashboard-healthy")

            # An outage on the other store: its card turns degraded, no reload needed, and a
            # stock change queued meanwhile waits (an outage dead-letters nothing). Then the
            # store refuses the change itself (400): a dead letter.
            market.faults(outage=True)
            daemon.set_stock("CAP", 7)
            page.wait_for_selector('[data-channel="market"] [data-state="degraded"]',
                                   timeout=WAIT_MS)
            market.faults(outage=False, error_rate=1.0, error_status=400)
            wait_until(lambda: daemon.status()["channels"]["market"]["outbox"]["dead"] >= 1,
                       timeout=30, what="a dead letter on market")
            page.wait_for_function(
                "() => document.querySelector('[data-channel=\"market\"] dd.bad') !== null",
                timeout=WAIT_MS)
            save(page, tmp_path, "dashboard-degraded")

            # The store takes it again; the retry button, with the token typed in, sends it.
            market.faults(error_rate=0.0)
            page.fill("#token", daemon.ops_token)
            page.click("#retry")
            page.wait_for_function(
                "() => document.getElementById('note').textContent.startsWith('retried')",
                timeout=WAIT_MS)
            wait_until(lambda: market.levels().get("CAP") == 7, timeout=30,
                       what="the retried push on market")
            assert reloads == [], reloads

            # A phone: the cards stack and nothing sticks out sideways.
            phone = browser.new_page(viewport={"width": 390, "height": 844},
                                     device_scale_factor=2, is_mobile=True)
            phone.goto(f"{daemon.ops}/")
            phone.wait_for_selector('[data-channel="shop"] [data-state="ok"]', timeout=WAIT_MS)
            overflow = phone.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"the page is {overflow}px wider than a phone"
            save(phone, tmp_path, "dashboard-phone")
            assert elsewhere == [], elsewhere
        finally:
            browser.close()
