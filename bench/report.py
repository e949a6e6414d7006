"""What every benchmark prints: machine details, percentiles, peak RSS, JSON and a table."""

from __future__ import annotations

import json
import os
import platform
import resource
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.demo.observe import percentile

err = Console(stderr=True, highlight=False)


def progress(message: str) -> None:
    """One progress line on stderr."""
    err.print(f"[dim]{datetime.now(UTC):%H:%M:%S}[/dim] {message}")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpu_count": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def percentile_ms(samples: Sequence[float], pct: float) -> float:
    """The `pct` percentile of samples in seconds, in milliseconds (nearest rank)."""
    value = percentile(samples, pct)
    return 0.0 if value is None else round(value * 1000, 3)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return round(peak / scale, 1)


def emit(report: dict[str, Any], table: Table) -> None:
    """The table on stderr for people, the JSON document on stdout for tools."""
    err.print(table)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
