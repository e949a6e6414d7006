"""`storesync check-config` on broken files: exit 2 and a message naming the file and the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[[locations]]
name = "main"

[channels.shop]
kind = "shopify"
shop = "demo.myshopify.com"
access_token = { env = "T_SHOP_TOKEN" }

[[bundles]]
sku = "PAIR"
components = { MUG = 2 }

[skus.MUG]
"""


def check(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "merchant.toml"
    path.write_text(text)
    return path, subprocess.run(
        [sys.executable, "-m", "agent.cli", "check-config", str(path)],
        cwd=REPO,
        env={**os.environ, "T_SHOP_TOKEN": "t", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_good_config_exits_0_with_a_summary(tmp_path):
    _, result = check(tmp_path, GOOD)
    assert result.returncode == 0, result.stderr
    assert "shop (shopify)" in result.stdout and "PAIR: MUG x 2" in result.stdout


CASES = {
    "syntax error": (GOOD.replace('name = "main"', 'name = "main'), "line 3"),
    "unknown key": (
        GOOD.replace("kind =", "webhok_secret = 'x'\nkind ="),
        "channels.shop.webhok_secret: unknown key",
    ),
    "wrong type": (GOOD + '\n[stock]\nbuffer = "ten"\n', "stock.buffer"),
    "missing secret env var": (
        GOOD.replace("T_SHOP_TOKEN", "T_UNSET_TOKEN"),
        "channels.shop.access_token: environment variable T_UNSET_TOKEN",
    ),
    "unreadable secret file": (
        GOOD.replace('{ env = "T_SHOP_TOKEN" }', '{ file = "missing-token.txt" }'),
        "channels.shop.access_token: cannot read secret file",
    ),
    "duplicate location": (
        GOOD.replace('name = "main"', 'name = "main"\n[[locations]]\nname = "main"'),
        "locations[1].name: duplicate location 'main'",
    ),
    "bundle with unknown component": (
        GOOD.replace("MUG = 2", "MUGG = 2"),
        "bundles[0].components.MUGG: unknown component 'MUGG'",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_exits_2_naming_file_and_key(tmp_path, case):
    text, expected = CASES[case]
    path, result = check(tmp_path, text)
    assert result.returncode == 2, result.stdout
    assert f"{path}: {expected}" in result.stderr, result.stderr


def test_did_you_mean_for_a_near_miss(tmp_path):
    _, result = check(tmp_path, GOOD.replace("kind =", "webhok_secret = 'x'\nkind ="))
    assert "did you mean 'webhook_secret'" in result.stderr
