"""What /status and `storesync status` say about a channel that still works but needs a look."""

from __future__ import annotations

from agent.status import channel_warnings

EBAY_NEAR_LIMIT = {
    "model": "daily_quota",
    "apis": {
        "fulfillment": {"model": "daily_quota", "used": 91_000, "limit": 100_000,
                        "resets_at": "2026-11-23T00:00:00-08:00", "warning": True},
        "inventory": {"model": "daily_quota", "used": 12, "limit": 2_000_000,
                      "resets_at": "2026-11-23T00:00:00-08:00", "warning": False},
    },
    "warning": True,
}


def test_a_daily_budget_near_its_limit_is_named_with_its_reset_time() -> None:
    assert channel_warnings(EBAY_NEAR_LIMIT, webhook_silent=False) == [
        "fulfillment quota nearly used: 91,000 of 100,000 calls today; "
        "it resets at 2026-11-23T00:00:00-08:00"
    ]


def test_a_channel_within_its_budgets_and_hearing_webhooks_has_no_warning() -> None:
    calm = {**EBAY_NEAR_LIMIT, "warning": False,
            "apis": {"inventory": EBAY_NEAR_LIMIT["apis"]["inventory"]}}  # type: ignore[index]
    assert channel_warnings(calm, webhook_silent=False) == []
    assert channel_warnings({"model": "token_bucket", "available": 3.0}, False) == []
    assert channel_warnings(None, webhook_silent=True) == [
        "orders arrive by poll but no webhook came lately: check the webhooks"
    ]
