"""Finished history is forgotten after its retention; what still needs someone never is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.store import Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_pruning_forgets_settled_work_and_keeps_dead_letters_pending_work_and_parked_webhooks(
    tmp_path,
):
    now = [T0]
    store = Store(tmp_path / "store.db", clock=lambda: now[0])
    try:
        def old_work(tx):
            done = tx.enqueue("shop", "stock", "MUG", {"qty": 1}, None)
            tx.set_outbox_state(done, "done")
            dead = tx.enqueue("shop", "stock", "CAP", {"qty": 2}, None)
            tx.set_outbox_state(dead, "dead", error="rejected by the channel")
            tx.enqueue("shop", "stock", "HAT", {"qty": 3}, None)  # still pending
            tx.insert_delivery("shop", "old-done", "orders/create", {}, b"{}")
            tx.finish_delivery("shop", "old-done")
            tx.insert_delivery("shop", "old-waiting", "orders/create", {}, b"{}")
            tx.add_event("dead_letter", "an old event")

        store.run(old_work)
        now[0] = T0 + timedelta(days=8)

        def new_work(tx):
            fresh = tx.enqueue("shop", "stock", "SOCK", {"qty": 4}, None)
            tx.set_outbox_state(fresh, "done")
            tx.insert_delivery("shop", "new-done", "orders/create", {}, b"{}")
            tx.finish_delivery("shop", "new-done")

        store.run(new_work)
        pruned = store.run(lambda tx: tx.prune_history(
            settled_before=now[0] - timedelta(days=7), events_before=now[0] - timedelta(days=7)))
        assert pruned == {"outbox": 1, "inbox": 1, "events": 1}
        left = {(r.key, r.state) for r in store.run(lambda tx: tx.outbox_rows())}
        assert left == {("CAP", "dead"), ("HAT", "pending"), ("SOCK", "done")}
        kept = {row[0] for row in store.reader().execute("SELECT delivery_key FROM inbox")}
        assert kept == {"old-waiting", "new-done"}
        # Pruning again finds nothing more.
        assert store.run(lambda tx: tx.prune_history(
            settled_before=now[0] - timedelta(days=7),
            events_before=now[0] - timedelta(days=7))) == {"outbox": 0, "inbox": 0, "events": 0}
    finally:
        store.close()
