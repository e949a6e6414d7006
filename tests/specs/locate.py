"""Where the official API models live on this machine.

Amazon's models (Apache-2.0) are copied into the repo under tests/fixtures/specs/amazon/ with
their NOTICE; until they are, the shared folder serves. eBay's specs are never copied into the
repo (eBay API License Agreement): they are read from `$STORESYNC_SPECS/ebay/` or the shared
folder beside the checkout, and tests that need them skip when neither has them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IN_REPO = REPO / "tests" / "fixtures" / "specs"
SHARED = REPO.parent / "shared" / "specs"
ENV_VAR = "STORESYNC_SPECS"


def _from_env() -> list[Path]:
    value = os.environ.get(ENV_VAR)
    return [Path(value)] if value else []


def amazon_spec_path(name: str) -> Path:
    """An Amazon model or schema file; FileNotFoundError naming every place looked."""
    places = [IN_REPO / "amazon" / name] + [
        root / "amazon" / name for root in (*_from_env(), SHARED)
    ]
    for place in places:
        if place.is_file():
            return place
    raise FileNotFoundError(f"Amazon model {name} not found in: {', '.join(map(str, places))}")


def ebay_spec_path(name: str) -> Path:
    """An eBay OpenAPI file, or a pytest skip saying how to provide it."""
    places = [root / "ebay" / name for root in (*_from_env(), SHARED)]
    for place in places:
        if place.is_file():
            return place
    pytest.skip(
        f"eBay OpenAPI specs not found: set {ENV_VAR} to a folder holding "
        f"ebay/{name} (eBay's published OpenAPI 3 file; its license keeps it out of the repo); "
        f"looked in: {', '.join(map(str, places))}"
    )
