"""`storesync run`: the long-running service, wired in a fixed order.

Start-up: config -> store (migrations) -> connectors -> bind both listeners -> scheduler and
workers -> sd_notify READY=1. A bad config exits 2 before anything starts (systemd's
RestartPreventExitStatus=2 keeps it from restart-looping); a listener that cannot bind exits 1.

Signals: SIGTERM/SIGINT stop gracefully (STOPPING=1, webhooks answered 503, scheduler stopped,
in-flight pushes given `[sync].drain_timeout`, the rest left in the outbox, WAL checkpointed,
exit 0). SIGHUP reloads the config: validated first, kept on error (shown in /status), applied
without a restart on success.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import BaseModel

from agent.config import Config, ConfigError, Secret, load_config
from agent.drop_folder import DropFolder
from agent.engine import Engine, Rules
from agent.http.activity import SAMPLE_S, Activity
from agent.http.ops import create_ops_app
from agent.http.webhooks import create_webhook_app
from agent.logs import Redactor, configure_logging
from agent.metrics import Metrics
from agent.sdnotify import Notifier
from agent.status import current_status, status_line
from agent.store import Store
from agent.store.timestamps import Clock, iso, utc_now
from agent.sync.alerts import AlertWatcher
from agent.sync.coordinator import ChannelCoordinator
from agent.sync.factory import NoConnector, build_connector
from agent.sync.health import ChannelHealth, State
from agent.sync.inbox import InboxProcessor
from connectors.base import AuthError, Connector

# Finished pushes and processed webhooks are kept this long (a webhook's copies arrive within
# hours: Shopify retries for 4 h), events a month; dead letters and pending work always.
HISTORY_KEPT = timedelta(days=7)
EVENTS_KEPT = timedelta(days=30)

log = structlog.get_logger("storesync.runtime")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
REPUBLISH_SLICE = 2000  # SKUs per transaction when recomputing everything
STATUS_EVERY = timedelta(seconds=10)
STOP_BOUND = timedelta(seconds=30)


class StartupError(Exception):
    """The service cannot start (a port in use, an unwritable database folder)."""


def config_secrets(model: BaseModel) -> Iterator[str]:
    """Every secret value in a config, so logs can mask them wherever they appear."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        values = value.values() if isinstance(value, dict) else (
            value if isinstance(value, list) else [value])
        for item in values:
            if isinstance(item, Secret):
                yield item.reveal()
            elif isinstance(item, BaseModel):
                yield from config_secrets(item)


class Runtime:
    """The agent's live state: store, engine, channels, listeners, scheduler."""

    def __init__(
        self, config: Config, *, notifier: Notifier | None = None, clock: Clock = utc_now,
        redactor: Redactor | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.redactor = redactor or Redactor(config_secrets(config))
        self.metrics = Metrics()
        try:
            self.version = metadata.version("storesync")
        except metadata.PackageNotFoundError:
            self.version = "dev"
        self.started_at = clock()
        self.ready = False
        self.stopping = False
        self.store_error: str | None = None
        self.last_reload: dict[str, Any] = {"at": None, "ok": True, "errors": []}
        self.coordinators: dict[str, ChannelCoordinator] = {}
        self.store: Store
        self.inbox: InboxProcessor
        self.alerts: AlertWatcher | None = None
        self.drop_folder: DropFolder | None = None
        self._engine = Engine(Rules.from_config(config))
        self._scheduler = AsyncIOScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
        )
        self._runners: list[web.AppRunner] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.bound: dict[str, tuple[str, int]] = {}

    @property
    def engine(self) -> Engine:
        """The engine with the current rules (replaced on reload)."""
        return self._engine

    # -- start-up ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, build the channels, bind, schedule, and tell systemd we are ready."""
        try:
            self.store = Store(self.config.agent.database, clock=self.clock)
        except Exception as exc:  # noqa: BLE001 - report any reason the file cannot be opened
            raise StartupError(
                f"cannot open the database {self.config.agent.database}: {exc}"
            ) from exc
        await self._sync_catalog()
        released = await self.store.submit(lambda tx: tx.release_inflight())
        if released:
            log.info("pushes interrupted by the last stop are queued again", rows=released)
        for name, channel in self.config.channels.items():
            self.coordinators[name] = await self._build_coordinator(name, channel)
        self.inbox = InboxProcessor(
            store=self.store,
            engine=lambda: self._engine,
            connectors=self._connectors,
            max_attempts=self.config.sync.inbox_max_attempts,
            metrics=self.metrics,
            on_auth_error=self._inbox_auth_error,
            on_applied=self.wake_pushers,
        )
        self.activity = Activity(self.metrics)
        self.metrics.watch_store(
            self.store.reader,
            # Read on a reader thread while a reload may swap coordinators: copy the dict first
            # (list() of a dict's items is one step under the GIL).
            lambda: {n: str(c.health.state) for n, c in list(self.coordinators.items())},
        )
        await self._bind(
            "webhooks",
            create_webhook_app(self, self.config.sync.webhook_body_limit),
            self.config.agent.webhook_listen,
        )
        await self._bind("ops", create_ops_app(self), self.config.agent.ops_listen)
        self._start_drop_folder()
        self._scheduler.start()
        self._scheduler.add_job(self.prune_history, "interval", hours=1, id="prune-history")
        for coordinator in self.coordinators.values():
            coordinator.start(self._scheduler)
        self.spawn(self.inbox.run(), name="inbox")
        self.alerts = AlertWatcher(store=self.store, config=lambda: self.config, clock=self.clock)
        self.spawn(self.alerts.run_checks(), name="alerts")
        self.spawn(self.alerts.run_notifier(), name="alert-webhook")
        self.spawn(self._heartbeat(), name="heartbeat")
        self.spawn(self._sample_activity(), name="activity")
        if self.notifier.watchdog_interval is not None:
            self.spawn(self._watchdog(self.notifier.watchdog_interval), name="watchdog")
        self.ready = True
        summary = status_line(await current_status(self))
        self.notifier.ready(summary)
        log.info("storesync is running", webhooks=self._url("webhooks"), ops=self._url("ops"),
                 channels=len(self.coordinators), status=summary)

    def _start_drop_folder(self) -> None:
        """Watch [shipments].drop_folder, if set; a folder that cannot be created stops start-up."""
        shipments = self.config.shipments
        if shipments.drop_folder is None:
            return
        folder = DropFolder(
            shipments.drop_folder,
            store=self.store,
            engine=lambda: self._engine,
            settle_time=shipments.settle_time,
            on_applied=self.wake_channels,
            clock=self.clock,
        )
        try:
            folder.prepare()
        except OSError as exc:
            raise StartupError(
                f"cannot use the drop folder {shipments.drop_folder}: {exc.strerror or exc}"
            ) from exc
        self.drop_folder = folder
        self.spawn(folder.run(shipments.scan_interval), name="drop-folder")
        log.info("watching the shipments drop folder", folder=str(shipments.drop_folder))

    async def _bind(self, name: str, app: web.Application, address: Any) -> None:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, address.host, address.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise StartupError(
                f"cannot listen on {address} for {name}: {exc.strerror or exc}"
            ) from exc
        self._runners.append(runner)
        server = site._server  # the bound socket tells the real port when the config says 0
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else address.port
        self.bound[name] = (address.host, port)

    def _url(self, name: str) -> str:
        host, port = self.bound[name]
        return f"http://{host}:{port}"

    async def _build_coordinator(
        self, name: str, channel: Any, previous: Connector | None = None
    ) -> ChannelCoordinator:
        health = ChannelHealth(name, clock=self.clock, on_change=self._record_state)
        connector: Connector | None = None
        if channel.enabled:
            try:
                connector = build_connector(name, channel, self.config.sync, previous)
            except NoConnector as exc:
                health.pause(str(exc))
        else:
            health.pause("disabled in the config")
        return ChannelCoordinator(
            name=name,
            config=channel,
            connector=connector,
            store=self.store,
            engine=lambda: self._engine,
            health=health,
            sync=self.config.sync,
            metrics=self.metrics,
        )

    def _connectors(self) -> dict[str, Connector]:
        return {n: c.connector for n, c in self.coordinators.items() if c.connector is not None}

    async def _sync_catalog(self) -> None:
        """Bring the config's catalog in, then recompute every published number in slices."""
        engine = self._engine
        await self.store.submit(lambda tx: engine.sync_catalog(tx, full=False))
        skus = await self.store.submit(lambda tx: tx.skus())
        queued = 0
        for start in range(0, len(skus), REPUBLISH_SLICE):
            part = skus[start : start + REPUBLISH_SLICE]
            queued += await self.store.submit(
                lambda tx, part=part: engine.republish(tx, part)  # type: ignore[misc]
            )
        if queued:
            log.info("published numbers recomputed", skus=len(skus), queued=queued)

    # -- while running -------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run a background task, keeping a reference and logging how it ends badly."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task failed", task=name, error=repr(t.exception()))

        task.add_done_callback(done)
        return task

    def wake_pusher(self, channel: str) -> None:
        """New outbox rows for one channel."""
        self.wake_alerts()
        coordinator = self.coordinators.get(channel)
        if coordinator is not None:
            coordinator.wake_pusher()

    def wake_channels(self, channels: set[str]) -> None:
        """New outbox rows for some channels."""
        for channel in channels:
            self.wake_pusher(channel)

    def wake_pushers(self) -> None:
        """New outbox rows, possibly for every channel."""
        self.wake_alerts()
        for coordinator in self.coordinators.values():
            coordinator.wake_pusher()

    def wake_alerts(self) -> None:
        """Stock may have changed: re-evaluate low-stock alerts soon."""
        if self.alerts is not None:
            self.alerts.wake()

    def store_failed(self, what: str, exc: BaseException) -> None:
        """A write failed (full disk, read-only file): say why in /status; webhooks get 503."""
        message = f"{what}: {type(exc).__name__}: {exc}"
        if self.store_error is None:
            log.error("the store stopped taking writes", error=message)
        self.store_error = message

    def store_ok(self) -> None:
        """A write worked again."""
        if self.store_error is not None:
            log.info("the store takes writes again", previous=self.store_error)
            self.store_error = None

    def _record_state(self, channel: str, state: State, reason: str | None) -> None:
        async def save() -> None:
            try:
                await self.store.submit(lambda tx: tx.set_channel_state(channel, str(state),
                                                                        reason))
            except Exception as exc:  # noqa: BLE001 - status is best effort; memory has it
                self.store_failed("saving a channel state", exc)

        if hasattr(self, "store"):
            self.spawn(save(), name=f"{channel}:state")

    def _inbox_auth_error(self, channel: str, exc: AuthError) -> None:
        coordinator = self.coordinators.get(channel)
        if coordinator is not None:
            coordinator.health.auth_failed("webhook processing", exc)

    async def prune_history(self) -> dict[str, int]:
        """Forget finished pushes and webhooks after HISTORY_KEPT, events after EVENTS_KEPT, so
        the database and /status stay as fast in year two as on day one."""
        now = self.clock()
        try:
            pruned: dict[str, int] = await self.store.submit(
                lambda tx: tx.prune_history(settled_before=now - HISTORY_KEPT,
                                            events_before=now - EVENTS_KEPT)
            )
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop the agent; next hour
            log.warning("pruning old history failed; will try again", error=str(exc))
            return {}
        if any(pruned.values()):
            log.info("pruned finished history", **pruned)
        return pruned

    async def _sample_activity(self) -> None:
        """Feed the dashboard's sparklines from the agent's own counters."""
        while True:
            await asyncio.sleep(SAMPLE_S)
            self.activity.sample()

    async def _heartbeat(self) -> None:
        """Every few seconds: prove the store takes writes, and tell systemd how we are."""
        while not self.stopping:
            try:
                beat = iso(self.clock())
                await self.store.submit(
                    lambda tx, beat=beat: tx.set_cursor("_agent", "heartbeat", beat)  # type: ignore[misc]
                )
                self.store_ok()
            except Exception as exc:  # noqa: BLE001 - surfaced in /status and the log
                self.store_failed("heartbeat write", exc)
            try:
                self.notifier.status(status_line(await current_status(self)))
            except Exception as exc:  # noqa: BLE001 - a read failed; try again next time
                log.warning("status update failed", error=str(exc))
            await asyncio.sleep(STATUS_EVERY.total_seconds())

    async def _watchdog(self, interval: timedelta) -> None:
        """WATCHDOG=1 from the event loop itself: if the loop stalls, systemd notices."""
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval.total_seconds())

    # -- reload --------------------------------------------------------------------------------

    async def reload(self) -> None:
        """SIGHUP: validate the config again; keep the old one on error, apply it on success."""
        path = self.config.path
        loop = asyncio.get_running_loop()
        at = iso(self.clock())
        try:
            new = await loop.run_in_executor(None, load_config, path)
        except ConfigError as exc:
            errors = [str(issue) for issue in exc.issues]
            self.last_reload = {"at": at, "ok": False, "errors": errors}
            log.error("config reload failed; the old config stays in force", errors=errors)
            return
        old = self.config
        if (new.agent.webhook_listen, new.agent.ops_listen, new.agent.database) != (
            old.agent.webhook_listen, old.agent.ops_listen, old.agent.database,
        ):
            log.warning("listener addresses and the database path change only on restart")
        if new.shipments != old.shipments:
            log.warning("the [shipments] drop folder settings change only on restart")
        self.config = new
        self.redactor.set_secrets(config_secrets(new))
        self._engine = Engine(Rules.from_config(new))
        drain = new.sync.drain_timeout
        replaced: dict[str, Connector | None] = {}
        for name in list(self.coordinators):
            if name not in new.channels or new.channels[name] != old.channels.get(name):
                stopped = self.coordinators.pop(name)
                replaced[name] = stopped.connector
                await stopped.stop(self._scheduler, drain)
        for name, channel in new.channels.items():
            if name not in self.coordinators:
                coordinator = await self._build_coordinator(name, channel, replaced.get(name))
                self.coordinators[name] = coordinator
                coordinator.start(self._scheduler)
        await self._sync_catalog()
        self.wake_pushers()
        self.last_reload = {"at": at, "ok": True, "errors": []}
        log.info("config reloaded", channels=len(self.coordinators))

    # -- shutdown ------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop taking webhooks, stop scheduling, drain pushes within the bound, close."""
        self.stopping = True
        self.notifier.stopping()
        log.info("stopping")
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if hasattr(self, "inbox"):
            self.inbox.stop()
        drain = self.config.sync.drain_timeout
        await asyncio.gather(
            *(c.stop(self._scheduler, drain) for c in self.coordinators.values()),
            return_exceptions=True,
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for runner in reversed(self._runners):
            await runner.cleanup()
        if hasattr(self, "store"):
            await asyncio.get_running_loop().run_in_executor(None, self.store.close)
        log.info("stopped")


async def serve(
    config: Config, *, notifier: Notifier | None = None, redactor: Redactor | None = None
) -> int:
    """Run until SIGTERM/SIGINT; reload on SIGHUP. Returns the process exit code."""
    runtime = Runtime(config, notifier=notifier, redactor=redactor)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: runtime.spawn(runtime.reload(), name="reload"))
    try:
        await runtime.start()
    except StartupError as exc:
        log.error("storesync cannot start", error=str(exc))
        await runtime.stop()
        return EXIT_FAILED
    await stop.wait()
    try:
        await asyncio.wait_for(runtime.stop(), STOP_BOUND.total_seconds())
    except TimeoutError:
        log.error("stopping took too long; exiting with work left in the outbox")
        return EXIT_FAILED
    return EXIT_OK


def run(config_path: Path) -> int:
    """The `storesync run` entry point."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr, flush=True)
        print(f"{config_path}: {len(exc.issues)} error(s); not starting", file=sys.stderr,
              flush=True)
        return EXIT_CONFIG
    redactor = Redactor(config_secrets(config))
    configure_logging(config.agent.log_format, config.agent.log_level, redactor)
    for warning in config.warnings:
        log.warning("config warning", warning=str(warning))
    return asyncio.run(serve(config, redactor=redactor))

