"""Reorder points: the math, its precedence, and the alert evaluation against a real store file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.config import Config, format_summary
from agent.engine import ChannelRules, Engine, Rules
from agent.engine.reorder import (
    ReorderRules,
    daily_velocity,
    evaluate_alerts,
    find_low_stock,
    velocity_reorder_point,
)
from agent.store import Store
from agent.store.alerts import alerts_report, stock_levels, units_sold_since
from agent.store.timestamps import iso
from connectors.base import ChannelOrder, OrderLine, OrderStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAYS_14, DAYS_7 = timedelta(days=14), timedelta(days=7)


# -- the math ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sold", "lead", "expected"),
    [
        (14, DAYS_7, 7),  # 1 a day for 7 days
        (3, DAYS_7, 2),  # 1.5 rounds up: a fraction of a unit still has to be on the shelf
        (1, DAYS_7, 1),  # 0.5 -> 1
        (28, timedelta(days=10), 20),
        (14, timedelta(hours=12), 1),  # half a day of 1 a day
        (14, timedelta(0), 0),
        (100, timedelta(days=3, hours=12), 25),
    ],
)
def test_velocity_reorder_point_is_the_ceiling_of_what_sells_during_the_lead_time(
    sold, lead, expected
):
    assert velocity_reorder_point(sold, DAYS_14, lead) == expected


def test_velocity_is_exact_not_floating_point():
    # 0.1 + 0.2 style errors would make ceil(7.000000001) = 8.
    assert velocity_reorder_point(70, timedelta(days=10), timedelta(days=1)) == 7
    assert daily_velocity(21, DAYS_14) * 2 == 3


def test_precedence_sku_point_then_velocity_then_global_default():
    rules = ReorderRules(
        velocity_window=DAYS_14, lead_time=DAYS_7, default_point=4,
        sku_points={"MUG": 10}, sku_lead_times={"CAP": timedelta(days=14)},
    )
    mug = rules.point("MUG", 28)
    assert (mug.value, mug.source, mug.daily_velocity, mug.lead_time_days) == (10, "config", 2.0, 7)
    cap = rules.point("CAP", 7)  # 0.5 a day x its own 14-day lead time
    assert (cap.value, cap.source, cap.lead_time_days) == (7, "velocity", 14)
    tea = rules.point("TEA", 0)  # nothing sold: the global default
    assert (tea.value, tea.source, tea.daily_velocity) == (4, "config", 0.0)
    assert ReorderRules().point("TEA", 0) is None  # no sales and no point: never alerts


def test_a_sku_is_in_alert_at_its_point_not_above():
    rules = ReorderRules(sku_points={"A": 5, "B": 5, "C": 5})
    low = find_low_stock([("A", None, 5), ("B", None, 6), ("C", "Cap", -2)], {}, rules)
    assert [(item.sku, item.available) for item in low] == [("A", 5), ("C", -2)]


def test_rules_come_from_the_config():
    config = Config.model_validate({
        "alerts": {"reorder_point": 3, "velocity_window": "7d", "lead_time": "2d"},
        "skus": {"MUG": {"reorder_point": 9}, "CAP": {"lead_time": "10d"}, "TEA": {}},
    })
    rules = ReorderRules.from_config(config)
    assert rules.default_point == 3 and rules.velocity_window == timedelta(days=7)
    assert rules.sku_points == {"MUG": 9}
    assert rules.lead_time_for("CAP") == timedelta(days=10)
    assert rules.lead_time_for("TEA") == timedelta(days=2)


def test_the_config_summary_names_the_alert_settings_but_never_the_secret():
    config = Config.model_validate({
        "alerts": {"webhook_url": "https://hooks.example.com/x", "webhook_secret": "s3cr3t-value"},
        "skus": {"MUG": {"reorder_point": 9}},
    })
    summary = format_summary(config)
    assert ("low-stock alerts: 1 SKU with a reorder point, default none; velocity over 14d x "
            "lead time 7d; check every 1m; webhook https://hooks.example.com/x "
            "(secret from literal)") in summary
    assert "s3cr3t-value" not in summary


def test_a_webhook_without_its_signing_secret_is_a_config_error():
    with pytest.raises(ValueError, match="webhook_secret"):
        Config.model_validate({"alerts": {"webhook_url": "https://hooks.example.com/x"}})


# -- the store ---------------------------------------------------------------------------------


class Shop:
    """A store file with MUG, CAP and a GIFT bundle (1 MUG + 2 CAP), and a clock to move."""

    def __init__(self, path) -> None:
        self.now = T0
        self.store = Store(path, clock=lambda: self.now)
        self.engine = Engine(Rules(
            locations=("main", "east"),
            channels={"shop": ChannelRules("shop", "shopify", ("main", "east")),
                      "amz": ChannelRules("amz", "amazon", ("main",))},
            bundles={"GIFT": {"MUG": 1, "CAP": 2}},
            sku_rules={},
            sku_titles={"MUG": "Black mug"},
        ))
        self.store.run(self.engine.sync_catalog)
        self.orders = 0

    def unit(self, name, *args, **kwargs):
        return self.store.run(lambda tx: getattr(self.engine, name)(tx, *args, **kwargs))

    def sell(self, lines, *, channel="shop", ago=timedelta(0), cancelled=0, fba=False):
        self.orders += 1
        at = self.now - ago
        order = ChannelOrder(
            channel, f"o{self.orders}", at, OrderStatus.OPEN,
            tuple(OrderLine(str(i), sku, qty, cancelled=cancelled)
                  for i, (sku, qty) in enumerate(lines.items())),
            created_at=at, fulfilled_by_channel=fba,
        )
        return self.unit("apply_order", order)

    def sold(self, window=DAYS_14):
        return self.store.run(lambda tx: units_sold_since(tx.conn, iso(self.now - window)))

    def evaluate(self, rules, notify=False):
        return self.store.run(lambda tx: evaluate_alerts(tx, rules, notify=notify))

    def rows(self):
        return self.store.run(lambda tx: tx.conn.execute(
            "SELECT sku, available, reorder_point, raised_at, cleared_at, notify_state "
            "FROM alerts ORDER BY id").fetchall())


@pytest.fixture
def shop(tmp_path):
    s = Shop(tmp_path / "store.db")
    s.unit("set_count", "MUG", 30)
    s.unit("set_count", "CAP", 40)
    s.unit("set_count", "CAP", 5, location="east")
    yield s
    s.store.close()


def test_units_sold_count_bundles_as_components_and_leave_out_cancelled_old_and_fba(shop):
    shop.sell({"MUG": 3})
    shop.sell({"GIFT": 2})  # 2 MUG and 4 CAP
    shop.sell({"MUG": 5}, cancelled=5)  # cancelled in full: not a sale
    shop.sell({"CAP": 4}, cancelled=1)
    shop.sell({"MUG": 100}, ago=timedelta(days=15))  # before the window
    shop.sell({"MUG": 7}, ago=timedelta(days=13, hours=23))  # just inside it
    shop.sell({"MUG": 50}, channel="amz", fba=True)  # Amazon's stock, not ours
    assert shop.sold() == {"MUG": 12, "CAP": 7}


def test_available_is_on_hand_over_all_locations_less_committed(shop):
    shop.sell({"CAP": 6})  # open: commits 6
    assert stock_levels(shop.store.reader()) == [("CAP", None, 39), ("MUG", "Black mug", 30)]


def test_an_alert_is_raised_once_follows_the_stock_clears_and_can_be_raised_again(shop):
    rules = ReorderRules(sku_points={"MUG": 10})
    assert shop.evaluate(rules).raised == ()
    shop.sell({"MUG": 20})  # available 10: at the point
    shop.now += timedelta(minutes=1)
    first = shop.evaluate(rules, notify=True)
    assert [(row.sku, row.available, row.reorder_point) for row in first.raised] == [
        ("MUG", 10, 10)]
    shop.sell({"MUG": 2})
    again = shop.evaluate(rules, notify=True)
    assert again.raised == () and again.cleared == ()  # still in alert: no second alert
    report = alerts_report(shop.store.reader())
    assert report == [{
        "sku": "MUG", "title": "Black mug", "available": 8, "reorder_point": 10,
        "source": "config", "daily_velocity": round(22 / 14, 3), "lead_time_days": 7.0,
        "since": iso(T0 + timedelta(minutes=1)),
    }]
    shop.unit("set_count", "MUG", 50)  # restocked above the point
    cleared = shop.evaluate(rules, notify=True)
    assert [row.sku for row in cleared.cleared] == ["MUG"]
    assert alerts_report(shop.store.reader()) == []
    shop.unit("set_count", "MUG", 20)  # available 20 - 22 committed: below again
    second = shop.evaluate(rules, notify=True)
    assert [row.sku for row in second.raised] == ["MUG"]
    rows = shop.rows()
    assert len(rows) == 2
    # The first was never delivered before it cleared: its webhook is dropped, not sent late.
    assert rows[0][4] is not None and rows[0][5] == "dropped"
    assert rows[1][4] is None and rows[1][5] == "pending"


def test_a_velocity_point_alerts_only_skus_that_sold(shop):
    rules = ReorderRules(velocity_window=DAYS_14, lead_time=DAYS_7)
    shop.unit("set_count", "CAP", 0, location="east")
    shop.sell({"CAP": 28})  # 2 a day x 7 days = 14; CAP available 40 - 28 = 12
    shop.unit("set_count", "MUG", 0)  # no sales: no point, no alert, even at zero
    raised = shop.evaluate(rules).raised
    assert [(r.sku, r.available, r.reorder_point, r.source, r.daily_velocity) for r in raised] == [
        ("CAP", 12, 14, "velocity", 2.0)]
    assert shop.rows()[0][5] == "off"  # no webhook configured: nothing to deliver
    # Two weeks later the sale has left the window: no velocity, the alert clears.
    shop.now += timedelta(days=15)
    assert [r.sku for r in shop.evaluate(rules).cleared] == ["CAP"]
