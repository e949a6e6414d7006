"""The stock, sku and db commands as a merchant runs them: real processes, a real database file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONFIG = """
[agent]
database = "store.db"

[[locations]]
name = "main"
[[locations]]
name = "east"

[channels.shop]
kind = "shopify"
shop = "demo.myshopify.com"
access_token = { env = "T_SHOP_TOKEN" }
buffer = 2

[channels.woo]
kind = "woocommerce"
api_url = "http://127.0.0.1:9"
consumer_key = { env = "T_WOO_KEY" }
consumer_secret = { env = "T_WOO_SECRET" }
locations = ["main"]

[[bundles]]
sku = "PAIR"
components = { MUG = 2 }

[skus.MUG]
"""

ENV = {"T_SHOP_TOKEN": "tok-123", "T_WOO_KEY": "ck_1", "T_WOO_SECRET": "cs_1"}


@pytest.fixture
def cli(tmp_path):
    config = tmp_path / "storesync.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)

    def run(*args: str, check_code: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "agent.cli", "--config", str(config), *args],
            cwd=REPO,
            env={**os.environ, **ENV},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check_code is not None:
            assert result.returncode == check_code, (result.stdout, result.stderr)
        return result

    run.dir = tmp_path
    return run


def sku_json(cli, sku: str) -> dict:
    return json.loads(cli("sku", "show", sku, "--json").stdout)


def test_stock_round_trip(cli):
    out = json.loads(cli("stock", "set", "MUG", "12", "--json").stdout)
    assert set(out) >= {"on_hand", "committed", "available", "published", "last_pushes"}
    assert (out["on_hand"], out["committed"], out["available"]) == (12, 0, 12)
    assert out["published"] == {"shop": 10, "woo": 12}

    cli("stock", "adjust", "MUG", "-3", "--reason", "breakage")
    cli("stock", "adjust", "MUG", "5", "--location", "east")
    report = sku_json(cli, "MUG")
    assert report["on_hand"] == 14 and report["locations"] == {"east": 5, "main": 9}
    assert report["published"] == {"shop": 12, "woo": 9}  # woo sells from main only
    assert [p["value"] for p in report["last_pushes"] if p["channel"] == "woo"] == [9]

    pair = sku_json(cli, "PAIR")
    assert (pair["available"], pair["published"]) == (7, {"shop": 5, "woo": 4})

    ledger = (
        sqlite3.connect(cli.dir / "store.db")
        .execute("SELECT reason, delta FROM movements WHERE sku = 'MUG' ORDER BY id")
        .fetchall()
    )
    assert ledger == [("count", 12), ("breakage", -3), ("adjustment", 5)]


def test_sku_show_unknown_and_no_database(cli):
    assert "no database" in cli("sku", "show", "MUG", check_code=3).stderr
    cli("stock", "set", "MUG", "1")
    assert "unknown SKU 'NOPE'" in cli("sku", "show", "NOPE", check_code=3).stderr


def test_stock_changes_refuse_bad_input(cli):
    assert (
        "unknown location 'west'"
        in cli("stock", "set", "MUG", "1", "--location", "west", check_code=2).stderr
    )
    assert "bundle" in cli("stock", "adjust", "PAIR", "1", check_code=2).stderr
    assert "negative" in cli("stock", "set", "MUG", "-4", check_code=2).stderr


def test_import_applies_nothing_from_a_file_with_errors(cli):
    cli("stock", "set", "MUG", "1")
    bad = cli.dir / "counts.csv"
    bad.write_text("sku,location,qty\nMUG,main,7\nCUP,west,3\nLID,,ten\nPAIR,main,1\nMUG,main,2\n")
    result = cli("stock", "import", str(bad), "--json", check_code=1)
    errors = {e["line"]: e["message"] for e in json.loads(result.stdout)["errors"]}
    assert set(errors) == {3, 4, 5, 6}
    assert "unknown location 'west'" in errors[3]
    assert "whole number" in errors[4]
    assert "bundle" in errors[5]
    assert "line 2" in errors[6]
    assert f"{bad}:3: unknown location" in result.stderr
    assert sku_json(cli, "MUG")["on_hand"] == 1  # nothing applied

    result = cli("stock", "import", str(bad), "--skip-bad", "--json")
    assert json.loads(result.stdout)["applied"] == 1
    assert sku_json(cli, "MUG")["on_hand"] == 7


def test_import_creates_skus_and_is_safe_to_rerun(cli):
    counts = cli.dir / "counts.csv"
    rows = "".join(f"SKU-{i:04d},{'east' if i % 2 else ''},{i}\n" for i in range(1200))
    counts.write_text("\ufeffsku,location,qty\n" + rows)  # a BOM, as spreadsheets write it
    first = json.loads(cli("stock", "import", str(counts), "--json").stdout)
    assert (first["applied"], first["changed"]) == (1200, 1199)  # SKU-0000 counts 0
    again = json.loads(cli("stock", "import", str(counts), "--json").stdout)
    assert (again["applied"], again["changed"]) == (1200, 0)
    assert sku_json(cli, "SKU-0999")["locations"] == {"east": 999}
    assert sku_json(cli, "SKU-0998")["published"] == {"shop": 996, "woo": 998}


def test_import_refuses_an_unreadable_file(cli):
    assert "cannot read" in cli("stock", "import", str(cli.dir / "nope.csv"), check_code=2).stderr
    header_only = cli.dir / "bad.csv"
    header_only.write_text("sku;qty\nMUG;1\n")
    assert "header lacks sku, qty" in cli("stock", "import", str(header_only), check_code=1).stderr


def test_db_check_passes_and_catches_a_tampered_ledger(cli):
    cli("stock", "set", "MUG", "5")
    assert json.loads(cli("db", "check", "--json").stdout)["ok"] is True
    conn = sqlite3.connect(cli.dir / "store.db")
    conn.execute("UPDATE stock SET on_hand = on_hand + 1 WHERE sku = 'MUG'")
    conn.commit()
    conn.close()
    result = cli("db", "check", check_code=1)
    assert "stock_equals_ledger: MUG at main: stock says 6, movements sum to 5" in result.stdout


def test_db_backup_is_a_consistent_copy(cli):
    cli("stock", "set", "MUG", "5")
    target = cli.dir / "backup.db"
    assert "integrity ok" in cli("db", "backup", str(target)).stdout
    copy = sqlite3.connect(target)
    assert copy.execute("SELECT on_hand FROM stock WHERE sku = 'MUG'").fetchone() == (5,)
    assert "already exists" in cli("db", "backup", str(target), check_code=1).stderr


def test_secrets_never_reach_output(cli):
    for args in (("stock", "set", "MUG", "3", "--json"), ("sku", "show", "MUG")):
        result = cli(*args)
        for secret in ENV.values():
            assert secret not in result.stdout + result.stderr
