"""`storesync db backup`: a consistent copy through SQLite's online backup API, safe live."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class BackupError(Exception):
    """The backup could not be written."""


def backup_database(source: Path, target: Path, *, pages_per_step: int = 1024) -> int:
    """Copy the live database to `target` (written beside it, then renamed); returns its size."""
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new name or remove it first")
    if not target.parent.is_dir():
        raise BackupError(f"folder {target.parent} does not exist")
    partial = target.with_name(target.name + ".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            # Copy in steps so a busy writer is not locked out for the whole copy.
            src.backup(dst, pages=pages_per_step)
            (result,) = dst.execute("PRAGMA integrity_check").fetchone()
            if result != "ok":
                raise BackupError(f"the copy failed its integrity check: {result}")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup failed: {exc}") from exc
    finally:
        src.close()
    os.replace(partial, target)
    return target.stat().st_size
