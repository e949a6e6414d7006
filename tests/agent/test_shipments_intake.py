"""The pieces under the drop folder and `outbox --retry`, fast: the CSV reader, retry_one and
retry_dead."""

from __future__ import annotations

from agent.shipments_csv import parse_shipments
from agent.store import Store


def test_aliases_group_lines_into_packages():
    packages, errors = parse_shipments(
        "\ufeffOrder-Number, Courier ,Tracking No,Item SKU,Units,Store\n"
        "#1001,UPS,1Z1,MUG,1,shop\n"
        "1001,UPS,1Z1,CAP,2,shop\n"
        "1001,UPS,1Z1,MUG,1,shop\n"
        "1002,DHL,D2,,,\n"
        "\n"
    )
    assert errors == []
    first, second = packages
    assert (first.order, first.channel, first.lines) == ("#1001", "shop", {"MUG": 2, "CAP": 2})
    assert first.line_for("CAP") == 3 and first.line_for(None) == 2
    assert second.as_input().lines is None and second.channel is None  # the whole order


def test_every_bad_line_is_named():
    _, errors = parse_shipments(
        "order_id,carrier,tracking_number,sku,qty\n"
        ",UPS,1Z1,MUG,1\n"
        "1001,UPS,,MUG,1\n"
        "1001,UPS,1Z3,MUG,0\n"
        "1001,UPS,1Z4,,3\n"
        "1001,FedEx,1Z5,MUG,1\n"
        "1001,UPS,1Z5,CAP,1\n"
    )
    assert [(e.line, e.message.split(":")[0].split(" ")[0]) for e in errors] == [
        (2, "order"), (3, "tracking"), (4, "bad"), (5, "a"), (7, "carrier")]
    assert parse_shipments("")[1][0].line == 1
    assert "missing column order_id" in parse_shipments("carrier,tracking\n")[1][0].message
    assert "no shipments" in parse_shipments("order,carrier,tracking\n")[1][0].message


def test_retry_one_revives_a_dead_letter_but_never_an_older_value(tmp_path):
    store = Store(tmp_path / "s.db")
    try:
        def dead(value: int) -> int:
            def unit(tx):
                row_id = tx.enqueue("shop", "stock", "MUG", value, None)
                tx.set_outbox_state(row_id, "dead", error="HTTP 503")
                return row_id
            return store.run(unit)

        older, newer = dead(5), dead(3)
        assert store.run(lambda tx: tx.retry_one(older)) == "replaced"
        assert store.run(lambda tx: tx.get_outbox(older)).state == "superseded"
        assert store.run(lambda tx: tx.retry_one(newer)) == "retried"
        row = store.run(lambda tx: tx.get_outbox(newer))
        assert (row.state, row.attempts) == ("pending", 0)
        assert store.run(lambda tx: tx.retry_one(newer)) == "due_now"
        assert store.run(lambda tx: tx.retry_one(999)) == "missing"
    finally:
        store.close()


def test_retry_dead_never_puts_an_older_value_back(tmp_path):
    store = Store(tmp_path / "s.db")
    try:
        def row(sku: str, value: int, state: str) -> int:
            def unit(tx):
                row_id = tx.enqueue("shop", "stock", sku, value, None)
                tx.set_outbox_state(row_id, state, error="HTTP 503")
                return row_id
            return store.run(unit)

        # MUG: 5 died, then 3 was accepted. CAP: 9 died, then 7 died too. TEE: 4 died alone.
        mug_old, _mug_new = row("MUG", 5, "dead"), row("MUG", 3, "done")
        cap_old, cap_new = row("CAP", 9, "dead"), row("CAP", 7, "dead")
        tee = row("TEE", 4, "dead")
        assert store.run(lambda tx: tx.retry_dead("shop")) == 2
        states = {i: store.run(lambda tx, i=i: tx.get_outbox(i)).state
                  for i in (mug_old, cap_old, cap_new, tee)}
        assert states == {mug_old: "superseded", cap_old: "superseded", cap_new: "pending",
                          tee: "pending"}
    finally:
        store.close()
