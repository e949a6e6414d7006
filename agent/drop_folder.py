"""The shipments drop folder: each CSV file applied exactly once, then filed in done/ or failed/.

A file's life:

1. It lands in the folder as `*.csv` (write `name.tmp`, then rename it; a file still changing
   within `settle_time` is left for the next scan).
2. It is claimed by an atomic rename into `processing/`.
3. Its content is parsed and checked line by line; then, in ONE transaction, every shipment is
   recorded (the same code as POST /shipments) together with the file's name and SHA-256.
   Any bad line rejects the whole file and nothing is applied.
4. It is moved to `done/`, or to `failed/` beside `<name>.error` naming each bad line.

A crash anywhere leaves the file in the folder or in `processing/`; files in `processing/` are
taken up again first. The digest row commits with the shipments, so a file whose transaction
committed is only moved on, never applied twice, and one whose transaction did not commit is
applied in full. A file with the same content as one already applied (a re-upload) is moved to
`done/` with a `<name>.duplicate` note and nothing is applied again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from agent.engine import Engine, EngineError, InvalidShipment
from agent.shipments import ShipmentResult, record_shipment
from agent.shipments_csv import Package, parse_shipments
from agent.stock_csv import RowError
from agent.store import Store, Tx
from agent.store.timestamps import iso

log = structlog.get_logger("storesync.drop_folder")

PROCESSING, DONE, FAILED = "processing", "done", "failed"


class FileRejected(Exception):
    """A file with bad lines: its transaction rolls back and it goes to failed/."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} bad line(s)")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What became of one file: 'done', 'duplicate' or 'failed', and where it was filed."""

    name: str
    result: str
    path: Path
    shipments: int = 0
    errors: tuple[RowError, ...] = ()


def apply_file(engine: Engine, tx: Tx, name: str, digest: str, packages: list[Package]
               ) -> list[ShipmentResult] | tuple[str, str]:
    """Record every package and the file's digest, or raise FileRejected (nothing applied).

    Returns the shipments, or (name, applied_at) of the earlier file with the same content.
    """
    earlier = tx.shipment_file(digest)
    if earlier is not None:
        return earlier
    results: list[ShipmentResult] = []
    errors: list[RowError] = []
    for package in packages:
        try:
            results.append(record_shipment(engine, tx, package.as_input()))
        except EngineError as exc:
            # The engine refuses before writing anything, so checking the rest is safe; every
            # bad line is reported at once and the rollback discards the good ones.
            key = exc.key if isinstance(exc, InvalidShipment) else None
            errors.append(RowError(package.line_for(key), str(exc)))
    if errors:
        raise FileRejected(sorted(errors, key=lambda e: e.line))
    tx.add_shipment_file(digest, name, len(results))
    created = sum(1 for r in results if r.created)
    tx.add_event("shipments_file", f"{name}: {created} shipment(s) recorded",
                 ref=name, data={"sha256": digest, "shipments": len(results)})
    return results


@dataclass(slots=True)
class FolderState:
    """What /status shows of the folder, as of the last scan."""

    waiting: int = 0  # CSV files not taken yet (still settling, or the scan has not come)
    processing: int = 0  # taken, not filed: a store error keeps them there until it clears
    failed: int = 0  # rejected files in failed/, each beside its .error (remove once fixed)
    last_scan_at: str | None = None
    last_file: dict[str, Any] | None = None  # name, result, shipments, at
    stuck: dict[str, str] = field(default_factory=dict)  # file -> the store error holding it

    def document(self, folder: Path) -> dict[str, Any]:
        """The `shipments_folder` part of /status."""
        return {"path": str(folder), "waiting": self.waiting, "processing": self.processing,
                "failed": self.failed, "last_scan_at": self.last_scan_at,
                "last_file": self.last_file,
                "stuck": [{"file": f, "error": e} for f, e in sorted(self.stuck.items())]}


class DropFolder:
    """Watches one folder; owns its processing/, done/ and failed/ subfolders."""

    def __init__(
        self,
        folder: Path,
        *,
        store: Store,
        engine: Callable[[], Engine],
        settle_time: timedelta,
        on_applied: Callable[[set[str]], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.folder = folder
        self.store = store
        self.engine = engine
        self.settle_s = settle_time.total_seconds()
        self.on_applied = on_applied
        self.clock = clock
        self.state = FolderState()
        self._stuck = self.state.stuck  # files left in processing/ by a store error, logged once

    def status(self) -> dict[str, Any]:
        """The `shipments_folder` part of /status, as of the last scan."""
        return self.state.document(self.folder)

    def prepare(self) -> None:
        """Create the folder and its subfolders (OSError when it cannot)."""
        for sub in (PROCESSING, DONE, FAILED):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)

    async def run(self, interval: timedelta) -> None:
        """Scan until cancelled."""
        resumed = True
        while True:
            try:
                await self.scan(resumed=resumed)
                resumed = False
            except Exception as exc:  # noqa: BLE001 - the watcher outlives one bad scan
                log.error("drop folder scan failed; trying again next scan",
                          folder=str(self.folder), error=repr(exc))
            await asyncio.sleep(interval.total_seconds())

    async def scan(self, *, resumed: bool = False) -> list[FileOutcome]:
        """Finish files left in processing/, then take every settled file in the folder."""
        outcomes = []
        await asyncio.to_thread(self.prepare)  # someone may have removed done/ or failed/
        for path in await asyncio.to_thread(self._leftovers):
            outcome = await self.process(path, resumed=resumed or path.name in self._stuck)
            if outcome is not None:
                outcomes.append(outcome)
        for path in await asyncio.to_thread(self._settled):
            claimed = await asyncio.to_thread(self._claim, path)
            if claimed is not None:
                outcome = await self.process(claimed, resumed=False)
                if outcome is not None:
                    outcomes.append(outcome)
        await asyncio.to_thread(self._count)
        self.state.last_scan_at = iso(self.clock())
        if outcomes:
            last = outcomes[-1]
            self.state.last_file = {"name": last.name, "result": last.result,
                                    "shipments": last.shipments, "at": self.state.last_scan_at}
        return outcomes

    def _count(self) -> None:
        """Count what waits in the folder, in processing/ and in failed/."""
        state = self.state
        state.waiting = sum(1 for p in self.folder.iterdir() if _is_csv(p))
        state.processing = sum(1 for p in (self.folder / PROCESSING).iterdir() if _is_csv(p))
        state.failed = sum(1 for p in (self.folder / FAILED).iterdir() if _is_csv(p))

    def _leftovers(self) -> list[Path]:
        return sorted(p for p in (self.folder / PROCESSING).iterdir() if _is_csv(p))

    def _settled(self) -> list[Path]:
        now = time.time()
        ready = []
        for path in self.folder.iterdir():
            if not _is_csv(path):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # renamed away between listing and looking
            if now - stat.st_mtime >= self.settle_s:
                ready.append((stat.st_mtime, path.name, path))
        return [path for _, _, path in sorted(ready)]

    def _claim(self, path: Path) -> Path | None:
        target = _free_name(self.folder / PROCESSING, path.name)
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None  # another process took it
        return target

    async def process(self, path: Path, *, resumed: bool) -> FileOutcome | None:
        """Apply one claimed file and file it; None when the store failed (tried again later)."""
        data = await asyncio.to_thread(path.read_bytes)
        digest = hashlib.sha256(data).hexdigest()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return await self._fail(path, [RowError(1, f"the file is not UTF-8 text: {exc}")])
        packages, errors = parse_shipments(text)
        if errors:
            return await self._fail(path, errors)
        engine = self.engine()
        name = path.name
        try:
            applied = await self.store.submit(
                lambda tx: apply_file(engine, tx, name, digest, packages)
            )
        except FileRejected as exc:
            return await self._fail(path, exc.errors)
        except Exception as exc:  # noqa: BLE001 - the store cannot write: keep the file, retry
            if self._stuck.get(name) != str(exc):
                log.error("cannot apply a shipments file; it stays in processing/ and is "
                          "tried again", file=name, error=str(exc))
            self._stuck[name] = str(exc)
            return None
        self._stuck.pop(name, None)
        if isinstance(applied, tuple):
            return await self._duplicate(path, digest, applied, resumed=resumed)
        filed = await asyncio.to_thread(_move, path, self.folder / DONE)
        log.info("shipments file applied", file=name, shipments=len(applied),
                 created=sum(1 for r in applied if r.created), filed=str(filed))
        self.on_applied({r.channel for r in applied})
        return FileOutcome(name, "done", filed, shipments=len(applied))

    async def _duplicate(
        self, path: Path, digest: str, earlier: tuple[str, str], *, resumed: bool
    ) -> FileOutcome:
        filed = await asyncio.to_thread(_move, path, self.folder / DONE)
        if resumed:
            # Our own commit, made just before a crash or a stop kept the file from moving.
            log.info("shipments file finished after a restart", file=path.name)
            return FileOutcome(path.name, "done", filed)
        note = (f"same content (sha256 {digest}) as {earlier[0]}, applied at {earlier[1]}; "
                "nothing was applied again\n")
        await asyncio.to_thread(_write_atomic, filed.with_name(filed.name + ".duplicate"), note)
        log.warning("shipments file is a duplicate; nothing applied", file=path.name,
                    same_as=earlier[0])
        return FileOutcome(path.name, "duplicate", filed)

    async def _fail(self, path: Path, errors: list[RowError]) -> FileOutcome:
        failed = self.folder / FAILED
        target = _free_name(failed, path.name)
        lines = [f"line {e.line}: {e.message}" for e in errors]
        report = "\n".join(
            [*lines, "nothing from this file was applied; fix it and drop it in again", ""]
        )
        # The report first: a crash before the move leaves the file in processing/ to redo.
        await asyncio.to_thread(_write_atomic, target.with_name(target.name + ".error"), report)
        await asyncio.to_thread(os.rename, path, target)
        log.warning("shipments file rejected", file=path.name, errors=lines[:5],
                    bad_lines=len(errors))
        try:
            await self.store.submit(lambda tx: tx.add_event(
                "shipments_file_failed", f"{path.name}: {lines[0]}", level="warning",
                ref=path.name, data={"errors": lines[:20]}))
        except Exception as exc:  # noqa: BLE001 - the .error file says it already
            log.warning("cannot record the rejected file's event", error=str(exc))
        return FileOutcome(path.name, "failed", target, errors=tuple(errors))


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and not path.name.startswith(".") and path.is_file()


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/stem.N.csv` when a file of that name is already there."""
    target = folder / name
    stem, suffix = os.path.splitext(name)
    n = 1
    while target.exists():
        target = folder / f"{stem}.{n}{suffix}"
        n += 1
    return target


def _move(path: Path, folder: Path) -> Path:
    target = _free_name(folder, path.name)
    os.rename(path, target)
    return target


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
