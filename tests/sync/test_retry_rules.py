"""How long a push waits before it is tried again."""

from __future__ import annotations

import random
from datetime import timedelta

from agent.sync.pusher import RetryRules

RULES = RetryRules(max_attempts=8, base=timedelta(seconds=5), cap=timedelta(minutes=15))


def test_backoff_doubles_from_the_base_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    for attempts, full in [(1, 5), (2, 10), (3, 20), (9, 900)]:
        wait = RULES.delay(attempts, rng).total_seconds()
        assert full / 2 <= wait <= full


def test_a_channel_failing_for_hours_waits_the_cap_and_does_not_overflow() -> None:
    # In an outage the backoff follows the channel's run of failures, hundreds or thousands.
    wait = RULES.delay(100_000, random.Random(1))
    assert timedelta(minutes=7.5) <= wait <= timedelta(minutes=15)
