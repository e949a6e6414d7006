"""How hard the reliability suite pushes: a CI subset by default, the full run on request.

    STORESYNC_RELIABILITY=full .venv/bin/pytest tests/reliability

runs every scenario at the sizes the README's "Guarantees" section quotes (50 crashes, 5-minute
outages, thousands of fuzzed inputs). Without it, each scenario runs small enough for CI.
"""

from __future__ import annotations

import os

FULL = os.environ.get("STORESYNC_RELIABILITY", "").strip().lower() == "full"


def size(ci: int, full: int) -> int:
    """`full` in the full run, `ci` otherwise."""
    return full if FULL else ci


def seconds(ci: float, full: float) -> float:
    """A duration: `full` in the full run, `ci` otherwise."""
    return full if FULL else ci
