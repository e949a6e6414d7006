"""Real processes for daemon tests: reference sandboxes and `storesync run`, on free loopback ports.

Everything waits on a condition with a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from agent.processes import REPO, Child, child_env, free_port
from agent.processes import wait_until as _wait_until
from agent.sandbox_config import channel_table, secret_env, secret_file

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], *, timeout: float = 20.0, what: str = "", every: float = 0.05
) -> T:
    """Poll `check` with a deadline, tolerating a peer that is not answering yet."""
    return _wait_until(
        check,
        every=every,
        timeout=timeout,
        what=what,
        tolerate=(httpx.HTTPError, OSError, sqlite3.Error, KeyError),
    )


def sign(secret: str, body: bytes) -> str:
    """The reference channel's webhook signature: base64 HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class Sandbox:
    """A channel sandbox (`storesync sandbox KIND`) in its own process, run by its control API."""

    def __init__(
        self,
        tmp: Path,
        name: str,
        *,
        kind: str = "reference",
        api_key: str = "ref-api-key-1",
        webhook_secret: str = "ref-webhook-secret-1",
        record_exchanges: bool = False,
    ) -> None:
        self.name = name
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.process = Child(
            [
                "sandbox",
                kind,
                "--port",
                str(self.port),
                "--api-key",
                api_key,
                "--webhook-secret",
                webhook_secret,
                *(["--record-exchanges"] if record_exchanges else []),
            ],
            tmp / f"sandbox-{name}.log",
            child_env(),
        )
        wait_until(
            lambda: httpx.get(f"{self.url}/_control/state", timeout=2).status_code == 200,
            what=f"sandbox {name} to answer",
        )

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.url}/_control{path}", json=body, timeout=10)
        assert response.status_code < 400, response.text
        return response.json()

    def state(self) -> dict[str, Any]:
        return self.control("GET", "/state")

    def seed(self, levels: dict[str, int]) -> None:
        self.control(
            "POST",
            "/listings",
            {"listings": [{"sku": s, "quantity": q} for s, q in levels.items()]},
        )

    def send_webhooks_to(self, url: str, **options: Any) -> None:
        self.control("PUT", "/webhooks", {"url": url, "secret": self.webhook_secret, **options})

    def buy(self, lines: dict[str, int], status: str = "open") -> dict[str, Any]:
        return self.control(
            "POST",
            "/orders",
            {"lines": [{"sku": s, "quantity": q} for s, q in lines.items()], "status": status},
        )

    def faults(self, **faults: Any) -> None:
        self.control("PUT", "/faults", faults)

    def levels(self) -> dict[str, int]:
        return {sku: entry["quantity"] for sku, entry in self.state()["listings"].items()}

    def stop(self) -> None:
        self.process.stop()


class Daemon:
    """`storesync run` in a subprocess, with a config pointing at the given sandboxes."""

    def __init__(
        self,
        tmp: Path,
        sandboxes: list[Sandbox],
        *,
        extra_toml: str = "",
        skus: dict[str, int] | None = None,
        sync_toml: str = "",
        key_files: bool = False,
        poll_interval: str = "1s",
        reconcile_interval: str = "5s",
        channel_options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.tmp = tmp
        self.webhook_port = free_port()
        self.ops_port = free_port()
        self.ops_token = "ops-token-for-tests"
        self.config = tmp / "storesync.toml"
        self.db = tmp / "storesync.db"
        self.sandboxes = {s.name: s for s in sandboxes}
        channels = "".join(
            channel_table(
                s.name,
                s.kind,
                s.url,
                self._key_ref(tmp, s, key_files),
                {
                    "webhook_secret": secret_env(f"SECRET_{s.name.upper()}"),
                    "poll_interval": poll_interval,
                    "reconcile_interval": reconcile_interval,
                    **(channel_options or {}).get(s.name, {}),
                },
            )
            + "\n"
            for s in sandboxes
        )
        self.env = child_env(
            {
                "OPS_TOKEN": self.ops_token,
                **{f"KEY_{s.name.upper()}": s.api_key for s in sandboxes},
                **{f"SECRET_{s.name.upper()}": s.webhook_secret for s in sandboxes},
            }
        )
        sku_tables = "".join(f"\n[skus.{sku}]\n" for sku in (skus or {}))
        self.text = f"""
[agent]
database = "storesync.db"
webhook_listen = "127.0.0.1:{self.webhook_port}"
ops_listen = "127.0.0.1:{self.ops_port}"
ops_token = {{ env = "OPS_TOKEN" }}
log_format = "json"

[sync]
push_retry_base = "200ms"
push_retry_max = "2s"
{sync_toml}
{channels}
{sku_tables}
{extra_toml}
"""
        self.config.write_text(self.text)
        self.config.chmod(0o600)
        self.process: Child | None = None
        self.ops = f"http://127.0.0.1:{self.ops_port}"
        self.webhooks = f"http://127.0.0.1:{self.webhook_port}"

    @staticmethod
    def _key_ref(tmp: Path, sandbox: Sandbox, key_files: bool) -> dict[str, str]:
        """The channel's API key as an env reference, or a file a test can rewrite."""
        if not key_files:
            return secret_env(f"KEY_{sandbox.name.upper()}")
        (tmp / f"key-{sandbox.name}.txt").write_text(sandbox.api_key + "\n")
        return secret_file(f"key-{sandbox.name}.txt")

    def start(self, *, wait: bool = True, **env: str) -> Daemon:
        self.process = Child(
            ["--config", str(self.config), "run"], self.tmp / "daemon.log", {**self.env, **env}
        )
        if wait:
            wait_until(self.ready, timeout=30, what="the daemon to be ready")
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.proc.poll() is not None:
            raise AssertionError(
                f"daemon exited {self.process.proc.returncode}:\n{self.process.log()[-3000:]}"
            )
        return httpx.get(f"{self.ops}/readyz", timeout=2).status_code == 200

    def status(self) -> dict[str, Any]:
        return httpx.get(f"{self.ops}/status", timeout=5).json()

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(
            f"{self.ops}{path}",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {self.ops_token}"},
        )

    def set_stock(self, sku: str, qty: int) -> None:
        response = self.post(f"/stock/{sku}", {"set": qty})
        assert response.status_code == 200, response.text

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def stop(self) -> int:
        """SIGTERM and wait; safe to call twice, or before start."""
        if self.process is None:
            return 0
        return self.process.stop(timeout=40)

    def log(self) -> str:
        return self.process.log() if self.process else ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `storesync --config <this daemon's> ARGS` and check it exits 0."""
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "--config", str(self.config), *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=30, check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    def converged(self, sandbox: Sandbox, skus: list[str]) -> bool:
        """The sandbox shows exactly the published numbers the engine computed."""
        published = dict(
            self.query(
                "SELECT sku, target_qty FROM listings WHERE channel = ? AND target_qty IS NOT NULL",
                (sandbox.name,),
            )
        )
        levels = sandbox.levels()
        return all(sku in published and levels.get(sku) == published[sku] for sku in skus)


def order_body(order_id: str, sku: str, qty: int, *, updated_at: str) -> bytes:
    """A reference-channel order payload, as its webhooks carry it."""
    return json.dumps(
        {
            "id": order_id,
            "name": f"#{order_id}",
            "status": "open",
            "created_at": updated_at,
            "updated_at": updated_at,
            "currency": "USD",
            "total": "10.00",
            "customer": "buyer@example.com",
            "lines": [
                {
                    "id": "1",
                    "sku": sku,
                    "title": sku,
                    "quantity": qty,
                    "shipped": 0,
                    "cancelled": 0,
                    "returned": 0,
                }
            ],
        }
    ).encode()
