"""The demo's world: channel sandboxes served in this process on loopback, and the real
`storesync run` beside them in its own process, with a config written for them.

The benchmarks use the same world with other settings (bench/), so everything a run needs to
choose is a field of `WorldSettings`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from agent.demo.observe import Ledger, Watch
from agent.processes import REPO, Child, child_env, free_port
from agent.sandbox_config import channel_table, secret_file, toml_value
from agent.store.queries import published_numbers
from connectors.sandbox import SANDBOX_CHANNELS, SANDBOXES, ChannelKeys, SandboxBase, Served, serve

T = TypeVar("T")

# Every channel kind a merchant sells on, in the order the demo lists them.
STORE_KINDS = ("shopify", "woocommerce", "amazon", "ebay")

# --faults: what each profile switches on in every sandbox (connectors/sandbox/faults.py).
FAULT_PROFILES: dict[str, dict[str, Any]] = {
    "none": {},
    "mild": {"drop_rate": 0.05, "duplicate_rate": 0.05, "error_rate": 0.02, "latency_s": 0.02},
    "harsh": {
        "drop_rate": 0.2,
        "duplicate_rate": 0.2,
        "duplicate_max": 3,
        "reorder": True,
        "error_rate": 0.1,
        "reset_rate": 0.02,
        "truncate_rate": 0.02,
        "latency_s": 0.05,
    },
}


def demo_tuning(
    kinds: Sequence[str],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Sandbox options and channel keys that make a short demo show steady state quickly.

    Nothing here changes how a channel behaves towards the agent except where said (and
    printed by the demo): the channels' documented rate limits stay on.
    """
    sandbox_options: dict[str, dict[str, Any]] = {}
    channel_options: dict[str, dict[str, Any]] = {}
    if "amazon" in kinds:
        # Amazon serves orders only once they are 2 minutes old; the demo's Amazon sandbox
        # serves them after 3 s so a one-minute demo shows them (the demo prints this).
        sandbox_options["amazon"] = {"min_age_s": 3}
        # getOrders allows a burst of 20, then one call a minute: poll every 15 s.
        channel_options["amazon"] = {"order_settle": "3s", "poll_interval": "15s"}
    return sandbox_options, channel_options


DEMO_NOTES = {
    "amazon": "amazon: orders settle after 3 s here; Amazon's API serves them after 2 min",
}


def available_kinds() -> list[str]:
    """The store kinds this version has both a connector sandbox and config keys for."""
    return [kind for kind in STORE_KINDS if kind in SANDBOXES and kind in SANDBOX_CHANNELS]


@dataclass(frozen=True, slots=True)
class WorldSettings:
    """Everything a demo or benchmark run chooses about its world."""

    kinds: Sequence[str]
    skus: Sequence[str]
    stock: int  # units of each SKU, in the agent and on every channel at the start
    seed: int = 2026
    faults: str = "none"
    webhooks: bool = True  # False: the agent hears channels only by polling
    poll_interval: str = "30s"  # for channels with webhooks (a safety net)
    polling_interval: str = "1s"  # for channels storesync hears only by polling
    reconcile_interval: str = "60s"
    # Per kind: keywords for the sandbox (rate limits, delays) and keys for its channel table.
    sandbox_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    channel_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sync_toml: Mapping[str, Any] = field(default_factory=dict)
    # Write a [skus.<sku>] table per SKU (readable for a demo; a 100k catalog comes from the
    # stock import alone).
    declare_skus: bool = True
    # Units each channel lists at the start (default: `stock`, i.e. already in step).
    channel_stock: int | None = None
    # Write each channel's API key to its own file (`secret_path`) and point the config at it,
    # as a merchant rotating credentials would, instead of into storesync.toml.
    secret_files: bool = False


@dataclass(slots=True)
class Channel:
    """One store: its sandbox, where it listens, and how the agent is told about it."""

    name: str
    kind: str
    sandbox: SandboxBase
    served: Served
    keys: ChannelKeys
    api_key: str
    webhook_secret: str

    @property
    def url(self) -> str:
        """The sandbox's base URL."""
        return self.served.url


class World:
    """Sandboxes in this process and the agent in a child process, in one folder."""

    def __init__(self, directory: Path, settings: WorldSettings) -> None:
        self.dir = directory
        self.settings = settings
        self.channels: dict[str, Channel] = {}
        self.ops_token = secrets.token_urlsafe(16)
        self.webhook_port = free_port()
        self.ops_port = free_port()
        self.ops_url = f"http://127.0.0.1:{self.ops_port}"
        self.webhook_url = f"http://127.0.0.1:{self.webhook_port}"
        self.config_path = directory / "storesync.toml"
        self.db_path = directory / "storesync.db"
        self.agent: Child | None = None
        self._http = httpx.AsyncClient(timeout=10)

    # -- starting and stopping ------------------------------------------------------------------

    async def start_sandboxes(self) -> None:
        """Serve one sandbox per kind on a free port, each listing every SKU at the stock."""
        for kind in self.settings.kinds:
            api_key, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
            options = dict(self.settings.sandbox_options.get(kind, {}))
            sandbox = SANDBOXES[kind](
                api_key=api_key, webhook_secret=secret, seed=self.settings.seed, **options
            )
            listed = self.settings.stock if self.settings.channel_stock is None else (
                self.settings.channel_stock)
            sandbox.seed_catalog({sku: listed for sku in self.settings.skus})
            served = await serve(sandbox.build_app())
            self.channels[kind] = Channel(
                kind, kind, sandbox, served, SANDBOX_CHANNELS[kind](served.url), api_key, secret
            )

    def write_config(self) -> None:
        """storesync.toml for the sandboxes (mode 0600: it holds their keys)."""
        s = self.settings
        tables = []
        for channel in self.channels.values():
            polled = not (s.webhooks and channel.keys.webhooks)
            extra: dict[str, Any] = {
                "webhook_secret": channel.webhook_secret,
                "poll_interval": s.polling_interval if polled else s.poll_interval,
                "reconcile_interval": s.reconcile_interval,
                **s.channel_options.get(channel.kind, {}),
            }
            secret: str | dict[str, str] = channel.api_key
            if s.secret_files:
                self.write_secret(channel.name, channel.api_key)
                secret = secret_file(self.secret_path(channel.name).name)
            tables.append(channel_table(channel.name, channel.kind, channel.url, secret, extra))
        sync = {"push_retry_base": "200ms", "push_retry_max": "5s", **s.sync_toml}
        text = "\n".join(
            [
                "# Written by `storesync demo` for its sandboxes; safe to delete.",
                "[agent]",
                'database = "storesync.db"',
                f'webhook_listen = "127.0.0.1:{self.webhook_port}"',
                f'ops_listen = "127.0.0.1:{self.ops_port}"',
                f"ops_token = {toml_value(self.ops_token)}",
                'log_format = "json"',
                "",
                "[sync]",
                *(f"{k} = {toml_value(v)}" for k, v in sync.items()),
                "",
                *tables,
                *(f"[skus.{sku}]\n" for sku in (s.skus if s.declare_skus else ())),
            ]
        )
        self.config_path.write_text(text)
        self.config_path.chmod(0o600)

    def secret_path(self, name: str) -> Path:
        """The file holding channel `name`'s API key when `secret_files` is set."""
        return self.dir / f"secret-{name}.txt"

    def write_secret(self, name: str, key: str) -> None:
        """Put a channel's API key in its secret file (mode 0600); the agent reads it on start
        and on SIGHUP."""
        path = self.secret_path(name)
        path.touch(mode=0o600)
        path.write_text(key + "\n")

    def import_stock(self) -> None:
        """Count the starting stock into the database, as a merchant does before the first run."""
        rows = io.StringIO()
        writer = csv.writer(rows)
        writer.writerow(["sku", "qty"])
        writer.writerows([sku, self.settings.stock] for sku in self.settings.skus)
        counts = self.dir / "starting-stock.csv"
        counts.write_text(rows.getvalue())
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "--config", str(self.config_path),
             "stock", "import", str(counts)],
            cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"storesync stock import failed:\n{done.stdout}{done.stderr}")

    async def start_agent(self, *, timeout: float = 60.0) -> None:
        """`storesync run` in a child process; returns once it answers /readyz."""
        self.agent = Child(
            ["--config", str(self.config_path), "run"], self.dir / "agent.log", child_env()
        )
        await self.wait_for(self._ready, timeout=timeout, what="the agent to be ready")
        if self.settings.webhooks:
            for channel in self.channels.values():
                if channel.keys.webhooks:
                    channel.sandbox.configure_webhooks(
                        url=f"{self.webhook_url}/webhooks/{channel.name}",
                        secret=channel.webhook_secret,
                    )

    def apply_faults(self, profile: str | None = None) -> None:
        """Switch on a fault profile in every sandbox."""
        knobs = FAULT_PROFILES[profile or self.settings.faults]
        for channel in self.channels.values():
            channel.sandbox.faults.clear()
            channel.sandbox.faults.update({**knobs, "seed": self.settings.seed})

    async def start(
        self, progress: Callable[[str], None] = lambda _: None, *, timeout: float = 120
    ) -> None:
        """Everything, in order: sandboxes, config, starting stock, agent, faults."""
        progress("starting sandboxes")
        await self.start_sandboxes()
        self.write_config()
        progress("importing the starting stock")
        await asyncio.to_thread(self.import_stock)
        progress("starting the agent")
        await self.start_agent(timeout=timeout)
        progress("waiting for the agent to discover every listing")
        # Each check reads /status and every channel's levels: at 100k SKUs, checking ten
        # times a second would load the agent more than its own work does.
        every = 0.1 if len(self.settings.skus) <= 1_000 else 1.0
        await self.wait_for(self.in_step, timeout=timeout, what="every channel to be in step",
                            every=every)
        self.apply_faults()

    def watch(self, ledger: Ledger) -> Watch:
        """A watch over every channel's levels, knowing which ones storesync only polls."""
        polled = frozenset(
            c.name for c in self.channels.values()
            if not (self.settings.webhooks and c.keys.webhooks)
        )
        return Watch({c.name: c.sandbox.levels for c in self.channels.values()}, ledger,
                     polled=polled)

    async def stop(self) -> int | None:
        """Stop the agent (SIGTERM, then wait) and the sandboxes; the agent's exit code."""
        code = None
        if self.agent is not None:
            code = await asyncio.to_thread(self.agent.stop, 40.0)
        for channel in self.channels.values():
            await channel.served.close()
        await self._http.aclose()
        return code

    async def in_step(self) -> bool:
        """Every channel discovered, nothing left to push, and showing the published numbers."""
        status = await self.status()
        if any(c["state"] != "ok" or c["outbox"]["depth"] for c in status["channels"].values()):
            return False
        published = self.published()
        for name, channel in self.channels.items():
            shown, wanted = channel.sandbox.levels(), published.get(name, {})
            if any(shown.get(sku) != wanted.get(sku) for sku in self.settings.skus):
                return False
        return True

    # -- asking the agent -----------------------------------------------------------------------

    async def _ready(self) -> bool:
        assert self.agent is not None
        if not self.agent.running:
            raise RuntimeError(
                f"the agent exited with {self.agent.proc.returncode}; its log:\n"
                + self.agent.log()[-3000:]
            )
        response = await self._http.get(f"{self.ops_url}/readyz")
        return response.status_code == 200

    async def wait_for(
        self, check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1
    ) -> Any:
        """Await `check()` (sync or async) until truthy, or raise TimeoutError at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                result = check()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return result
            except httpx.HTTPError:
                pass
            if loop.time() >= deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            await asyncio.sleep(every)

    async def ops(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One ops API call with the token."""
        return await self._http.request(
            method, f"{self.ops_url}{path}", json=body,
            headers={"Authorization": f"Bearer {self.ops_token}"},
        )

    async def status(self) -> dict[str, Any]:
        """The agent's /status document."""
        response = await self._http.get(f"{self.ops_url}/status")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def metrics(self) -> str:
        """The agent's /metrics text."""
        response = await self._http.get(f"{self.ops_url}/metrics")
        response.raise_for_status()
        return response.text

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run one agent/store/queries.py function on the agent's database, read-only."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return query(conn)
        finally:
            conn.close()

    def published(self) -> dict[str, dict[str, int]]:
        """The number the agent wants each channel to show, by channel and SKU."""
        return self.read(published_numbers)
