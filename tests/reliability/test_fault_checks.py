"""The checks the channel-fault suite judges the agent by: each must count what it says, or a
scenario passes or fails for the wrong reason."""

from __future__ import annotations

from connectors.sandbox.app import RequestRecord
from tests.reliability.fault_world import early_after_storm_429, storm_429s, storm_bound


def storm(at: float, scope: str = "store") -> RequestRecord:
    return RequestRecord("POST", "/graphql", "POST /graphql", 429, "storm", at, scope)


def answered(at: float, scope: str = "store") -> RequestRecord:
    return RequestRecord("POST", "/graphql", "POST /graphql", 200, None, at, scope)


def test_requests_in_flight_when_a_storm_begins_count_as_one_429() -> None:
    # A poll, a sweep and a push meet the storm's first moment; then one probe per pause.
    records = [storm(100.0), storm(100.002), storm(100.005), storm(102.01), storm(104.02)]
    assert storm_429s(records) == {"store": 3}
    assert not early_after_storm_429(records, retry_after=2)


def test_a_client_that_keeps_calling_through_a_storm_collects_a_429_each_time() -> None:
    records = [storm(100.0 + 0.5 * n) for n in range(40)]
    assert storm_429s(records)["store"] > storm_bound(20, 2)
    assert early_after_storm_429(records, retry_after=2)


def test_each_metered_scope_meets_a_storm_on_its_own() -> None:
    records = [storm(100.0, "getOrders"), storm(100.001, "getOrderItems"),
               storm(102.0, "getOrders"), answered(100.5, "getOrderItems")]
    assert storm_429s(records) == {"getOrders": 2, "getOrderItems": 1}
