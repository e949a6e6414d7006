"""Starting storesync processes (the agent, channel sandboxes) on loopback, and waiting for them.

The demo, the benchmarks and the daemon tests all run the real programs as child processes on
free loopback ports; this is how they start them and wait for them, always with a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
# Variables a child must not inherit: it is not the unit systemd started.
_SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID",
                 "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float = 20.0,
    every: float = 0.05,
    what: str = "a condition",
    tolerate: tuple[type[BaseException], ...] = (OSError,),
) -> T:
    """Call `check` until it returns something truthy; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except tolerate as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}"
                               + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(every)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment for a child: storesync importable, no inherited systemd variables."""
    env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class Child:
    """A `storesync ...` child process with its output in a log file."""

    def __init__(self, args: list[str], log_path: Path, env: Mapping[str, str]) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", *args], cwd=REPO, env=dict(env),
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def running(self) -> bool:
        """Whether it has not exited yet."""
        return self.proc.poll() is None

    def log(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        """Send a signal if it still runs."""
        if self.running:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for it to exit; its exit code."""
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; its exit code. Safe to call twice."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode
