"""sd_notify: tell systemd we are ready, what we are doing, that we are alive, that we stop.

The protocol is one datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET
(https://www.freedesktop.org/software/systemd/man/sd_notify.html); a leading "@" names an
abstract socket. Without $NOTIFY_SOCKET every call does nothing.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta


class Notifier:
    """Sends sd_notify messages, if systemd (or a test) is listening."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: timedelta | None = None
        if watchdog_usec.isdigit() and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            # systemd asks for a ping at least every WATCHDOG_USEC; sd_watchdog_enabled(3)
            # recommends every half of it.
            self.watchdog_interval = timedelta(microseconds=int(watchdog_usec) / 2)

    @property
    def enabled(self) -> bool:
        """Whether anyone is listening."""
        return self._address is not None

    def notify(self, *lines: str) -> None:
        """Send `KEY=value` lines in one datagram; errors are ignored (systemd may be gone)."""
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall("\n".join(lines).encode())
        except OSError:
            pass

    def ready(self, status: str) -> None:
        """READY=1: the listeners are bound and the workers run."""
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """A one-line status, shown by `systemctl status`."""
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        """STOPPING=1: shutdown has begun."""
        self.notify("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        """WATCHDOG=1: the event loop is alive."""
        self.notify("WATCHDOG=1")
