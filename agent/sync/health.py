"""A channel's health: one state, changed on evidence, logged once per change, never per poll.

    ok            everything flows
    degraded      recent calls failed (the channel is down or answering garbage); still trying
    needs_reauth  the channel refused our credentials; polls and pushes wait (the outbox is kept)
                  until the config is fixed and reloaded (SIGHUP)
    paused        an operator paused it, or it cannot run (no connector for its kind)
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

log = structlog.get_logger("storesync.health")

# Consecutive failures before a channel is called degraded: one blip is not an outage.
DEGRADED_AFTER = 3
RECENT_ERRORS = 10


class State(enum.StrEnum):
    """A channel's health state."""

    OK = "ok"
    DEGRADED = "degraded"
    NEEDS_REAUTH = "needs_reauth"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class ErrorNote:
    """One recent error, for /status."""

    at: datetime
    where: str
    message: str


class ChannelHealth:
    """The health of one channel, shared by its coordinator and its pusher."""

    def __init__(
        self,
        channel: str,
        *,
        clock: Callable[[], datetime],
        on_change: Callable[[str, State, str | None], None],
    ) -> None:
        self.channel = channel
        self.state = State.OK
        self.reason: str | None = None
        self.since = clock()
        self.failures = 0
        self.recent_errors: deque[ErrorNote] = deque(maxlen=RECENT_ERRORS)
        self._clock = clock
        self._on_change = on_change

    @property
    def can_call(self) -> bool:
        """Whether polls and pushes may go to the channel now."""
        return self.state in (State.OK, State.DEGRADED)

    def succeeded(self) -> None:
        """A call worked: a degraded channel recovers."""
        self.failures = 0
        if self.state == State.DEGRADED:
            self._move(State.OK, None)

    def failed(self, where: str, error: BaseException) -> None:
        """A call failed transiently; enough in a row make the channel degraded."""
        message = f"{type(error).__name__}: {error}"
        self.recent_errors.append(ErrorNote(self._clock(), where, message))
        self.failures += 1
        if self.state == State.OK and self.failures >= DEGRADED_AFTER:
            self._move(State.DEGRADED, f"{self.failures} failures in a row; last: {message}")

    def auth_failed(self, where: str, error: BaseException) -> None:
        """The channel refused our credentials: stop calling it until the config is reloaded."""
        message = f"{type(error).__name__}: {error}"
        self.recent_errors.append(ErrorNote(self._clock(), where, message))
        if self.state != State.NEEDS_REAUTH:
            self._move(State.NEEDS_REAUTH, message)

    def pause(self, reason: str) -> None:
        """Stop calling the channel (an operator's decision, or no connector)."""
        if self.state != State.PAUSED:
            self._move(State.PAUSED, reason)

    def resume(self) -> None:
        """Start calling the channel again."""
        if self.state != State.OK:
            self.failures = 0
            self._move(State.OK, None)

    def _move(self, state: State, reason: str | None) -> None:
        previous = self.state
        self.state, self.reason, self.since = state, reason, self._clock()
        event = "channel recovered" if state == State.OK else "channel state changed"
        level = log.info if state in (State.OK, State.PAUSED) else log.error
        level(event, channel=self.channel, state=str(state), previous=str(previous), reason=reason)
        self._on_change(self.channel, state, reason)
