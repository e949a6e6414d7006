"""The systemd units: valid to systemd where installed, and with the directives we rely on."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import SyncConfig

UNITS = Path(__file__).resolve().parents[2] / "systemd"
REQUIRED = {
    "Type": "notify",
    "WatchdogSec": None,
    "Restart": "on-failure",
    "RestartSec": "5s",
    "RestartPreventExitStatus": "2",
    "TimeoutStopSec": None,
    "DynamicUser": "yes",
    "StateDirectory": None,
    "ConfigurationDirectory": "storesync",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
}


def directives(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            found.setdefault(match[1], []).append(match[2])
    return found


@pytest.mark.parametrize("unit", ["storesync.service", "storesync@.service"])
def test_unit_has_the_directives_we_rely_on(unit):
    found = directives(UNITS / unit)
    for key, value in REQUIRED.items():
        assert key in found, f"{unit} lacks {key}="
        if value is not None:
            assert value in found[key], f"{unit}: {key}={found[key]}, want {value}"
    assert any(v.startswith("shopify-access-token:") for v in
               [line.lstrip("# ").split("=", 1)[-1] for line in
                (UNITS / unit).read_text().splitlines() if "LoadCredential=" in line])


@pytest.mark.parametrize("unit", ["storesync.service", "storesync@.service"])
def test_stop_timeout_leaves_room_for_the_drain(unit):
    stop = int(directives(UNITS / unit)["TimeoutStopSec"][0].removesuffix("s"))
    drain = SyncConfig().drain_timeout
    # The agent's own bound on stopping is 30 s; systemd must not SIGKILL it before then.
    assert timedelta(seconds=stop) > max(drain, timedelta(seconds=30))


def test_template_unit_is_per_merchant():
    found = directives(UNITS / "storesync@.service")
    assert "%i" in found["ExecStart"][0] and found["StateDirectory"] == ["storesync/%i"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit,name", [("storesync.service", "storesync.service"),
                                       ("storesync@.service", "storesync@acme.service")])
def test_systemd_analyze_verify(tmp_path, unit, name):
    # verify checks that ExecStart exists; point it at a binary every machine has.
    text = (UNITS / unit).read_text().replace("/usr/local/bin/storesync", "/bin/true")
    (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "storesync" not in result.stderr, result.stderr  # no warnings about our unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_security_exposure_is_low(tmp_path):
    text = (UNITS / "storesync.service").read_text().replace("/usr/local/bin/storesync",
                                                             "/bin/true")
    (tmp_path / "storesync.service").write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(tmp_path / "storesync.service")],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for storesync.service: ([0-9.]+)", result.stdout)
    if match is None:
        pytest.skip(f"systemd-analyze security cannot score offline here: {result.stderr[:200]}")
    assert float(match[1]) <= 2.0, result.stdout[-2000:]
