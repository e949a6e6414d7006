"""`storesync sandbox KIND` as a person runs it: a real process, a real port, a real SIGTERM."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]

# The command module driven through its own register()/run(), the way agent/cli.py drives it.
RUNNER = """
import argparse, sys
from agent.commands import sandbox
parser = argparse.ArgumentParser(prog="storesync")
sub = parser.add_subparsers(dest="command", required=True)
sandbox.register(sub, argparse.ArgumentParser(add_help=False))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def start(argv: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        argv, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def read_url(proc: subprocess.Popen[str], timeout_s: float = 20.0) -> str:
    """The URL from the first line the sandbox prints, waiting at most `timeout_s`."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on " in line:
            return line.split("listening on ", 1)[1].strip()
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"the sandbox printed no URL; stderr: {err}")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def test_the_command_serves_until_sigterm() -> None:
    proc = start([
        sys.executable, "-c", RUNNER, "sandbox", "reference", "--port", "0",
        "--api-key", "cli-key", "--webhook-secret", "cli-secret", "--seed-skus", "3",
    ])
    try:
        url = read_url(proc)
        state = httpx.get(f"{url}/_control/state", timeout=5).json()
        assert sorted(state["listings"]) == ["SKU-001", "SKU-002", "SKU-003"]
        listings = httpx.get(f"{url}/listings", headers={"Authorization": "Bearer cli-key"})
        assert listings.status_code == 200 and len(listings.json()["listings"]) == 3
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "reference sandbox stopped" in err


def test_a_busy_port_is_a_clean_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start([sys.executable, "-c", RUNNER, "sandbox", "reference", "--port", str(port)])
        _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert "cannot listen on" in err or "error" in err.lower()


def test_storesync_sandbox_runs_through_the_cli() -> None:
    proc = start([sys.executable, "-m", "agent.cli", "sandbox", "reference", "--port", "0"])
    try:
        url = read_url(proc)
        assert httpx.get(f"{url}/_control/state", timeout=5).status_code == 200
    finally:
        code, err = stop(proc)
    assert code == 0, err
