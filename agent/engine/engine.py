"""The units of work: each runs inside one store transaction and leaves the store consistent.

Every unit that can change what a channel should show ends by republishing the SKUs it touched:
the published number of each (channel, SKU) is recomputed, and where it changed, one coalesced
outbox row carries the newest value, with the channel's expected current value for
compare-and-set.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from agent.engine.errors import (
    ImplausibleOrder,
    InvalidShipment,
    InvalidStockChange,
    UnknownChannel,
    UnknownLocation,
    UnknownOrder,
)
from agent.engine.orders import (
    as_utc,
    clamp,
    commitment,
    compare_versions,
    content_hash,
    derive_status,
    reserves_stock,
)
from agent.engine.rules import Rules
from agent.engine.stock_math import MAX_UNITS, available_quantity, bundle_available
from agent.store.records import StoredLine, StoredOrder
from agent.store.transaction import Tx
from connectors.base import ChannelOrder, OrderStatus


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What apply_order did: 'created', 'updated', 'duplicate' or 'stale'."""

    result: str
    unknown_skus: tuple[str, ...] = ()

    @property
    def applied(self) -> bool:
        """Whether this version changed the store."""
        return self.result in ("created", "updated")


@dataclass(frozen=True, slots=True)
class ShipmentRequest:
    """A shipment to record: which order, which units (all remaining when `lines` is None)."""

    channel: str
    order_id: str
    carrier: str = ""
    tracking_number: str = ""
    tracking_url: str = ""
    # line id or SKU -> units; a SKU spreads over the order's lines that still hold it
    lines: Mapping[str, int] | None = None
    location: str | None = None
    shipped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ShipmentOutcome:
    """The shipment recorded (or found already recorded under its tracking number)."""

    shipment_id: int
    created: bool
    lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DriftOutcome:
    """What a channel's observed level meant: no drift, imported as a movement, or re-pushed."""

    expected: int | None
    observed: int
    action: str  # 'none', 'imported', 'repush', 'first_seen', 'requeued'

    @property
    def drift(self) -> int:
        """Observed minus expected (0 when nothing was expected)."""
        return 0 if self.expected is None else self.observed - self.expected


class Engine:
    """Applies orders, shipments and stock changes under the merchant's rules."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    # -- catalog -----------------------------------------------------------------------------

    def sync_catalog(self, tx: Tx, *, full: bool = True) -> int:
        """Bring locations, channels, declared SKUs and bundles in from the config.

        With `full`, recompute every published number (at start-up: any rule may have changed);
        otherwise only those of SKUs and bundles that are new or changed. Returns rows queued.
        """
        for name in self.rules.locations:
            tx.ensure_location(name, None)
        for ch in self.rules.channels.values():
            tx.ensure_channel(ch.name, ch.kind)
        changed: set[str] = set()
        bundle_names = set(self.rules.bundles)
        for sku in self.rules.sku_rules:
            if sku not in bundle_names and tx.ensure_sku(sku, title=self.rules.sku_titles.get(sku)):
                changed.add(sku)
        stored = tx.bundle_components(bundle_names)
        for bundle, components in self.rules.bundles.items():
            for comp in components:
                tx.ensure_sku(comp)
            tx.ensure_sku(bundle, kind="bundle", title=self.rules.sku_titles.get(bundle))
            if stored.get(bundle) != dict(components):
                tx.set_bundle_components(bundle, components)
                changed.add(bundle)
        return self.recompute_all(tx) if full else self.republish(tx, changed)

    # -- orders ------------------------------------------------------------------------------

    def apply_order(self, tx: Tx, order: ChannelOrder) -> OrderOutcome:
        """Insert or update an order; older or repeated versions change nothing."""
        if order.channel not in self.rules.channels:
            raise UnknownChannel(f"order {order.external_id}: unknown channel {order.channel!r}")
        _require_plausible(order)
        digest = content_hash(order)
        stored = tx.get_order(order.channel, order.external_id)
        if stored is not None:
            order_cmp = compare_versions(order.updated_at, digest, stored)
            if order_cmp == 0:
                return OrderOutcome("duplicate")
            if order_cmp < 0:
                return OrderOutcome("stale")

        now = tx.now()
        ref = f"{order.channel}:{order.external_id}"
        location = self.rules.ship_location(order.channel)
        held_before = commitment(stored)
        lines: dict[str, StoredLine] = dict(stored.lines) if stored else {}
        new_component_lines: list[str] = []
        unknown: list[str] = []
        touched: set[str] = set()
        shipped_now: dict[str, int] = {}
        closed = order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED)

        for incoming in order.lines:
            prev = lines.get(incoming.line_id)
            # A line never un-ships: a newer version that lists fewer units than already left the
            # warehouse is taken to have at least those units.
            qty = max(incoming.quantity, prev.shipped if prev else 0, 0)
            if prev is not None and prev.components:
                master, components = prev.sku, prev.components
            else:
                master = self._master_sku(tx, order.channel, incoming.sku)
                components = self._components(tx, master)
                if components:
                    new_component_lines.append(incoming.line_id)
                elif prev is None:
                    unknown.append(incoming.sku or "")
            prev_shipped = prev.shipped if prev else 0
            prev_returned = prev.returned if prev else 0
            reported_shipped = incoming.shipped
            if order.status == OrderStatus.SHIPPED:
                reported_shipped = qty - clamp(incoming.cancelled, 0, qty)
            shipped = clamp(max(prev_shipped, reported_shipped), 0, qty)
            if closed:
                cancelled = qty - shipped
            else:
                cancelled = clamp(incoming.cancelled, 0, qty - shipped)
            returned = prev_returned
            if self.rules.refund_restocks:
                returned = max(prev_returned, clamp(incoming.returned, 0, shipped))
            line = StoredLine(
                incoming.line_id,
                incoming.sku,
                master if components else None,
                incoming.title,
                qty,
                shipped,
                cancelled,
                returned,
                dict(components),
            )
            lines[incoming.line_id] = line
            if order.fulfilled_by_channel:
                continue
            if shipped > prev_shipped:
                shipped_now[line.line_id] = shipped - prev_shipped
            for comp, per_unit in components.items():
                if shipped > prev_shipped:
                    tx.add_movement(
                        comp, location, -(shipped - prev_shipped) * per_unit, "shipped", ref
                    )
                    touched.add(comp)
                if returned > prev_returned:
                    tx.add_movement(
                        comp, location, (returned - prev_returned) * per_unit, "returned", ref
                    )
                    touched.add(comp)

        if closed:
            # Lines a newer version no longer lists still close with the order.
            for line in lines.values():
                line.cancelled = line.qty - line.shipped

        status = derive_status(order.status, lines.values())
        saved = StoredOrder(
            channel=order.channel,
            external_id=order.external_id,
            name=order.name,
            status=str(status),
            reserves=reserves_stock(
                status,
                unpaid_reserves=self.rules.unpaid_reserves,
                fulfilled_by_channel=order.fulfilled_by_channel,
            ),
            fulfilled_by_channel=order.fulfilled_by_channel,
            updated_at=as_utc(order.updated_at),
            content_hash=digest,
            created_at=as_utc(order.created_at) if order.created_at else None,
            customer=order.customer,
            currency=order.currency,
            total=order.total,
            raw=json.dumps(order.raw, default=str),
            first_seen_at=stored.first_seen_at if stored else now,
            lines=lines,
        )
        tx.save_order(saved, new_lines=new_component_lines)
        touched |= self._move_commitment(tx, held_before, commitment(saved))
        if shipped_now:
            tx.add_shipment(
                channel=order.channel,
                external_id=order.external_id,
                carrier="",
                tracking_number="",
                tracking_url="",
                location=location,
                source="channel",
                shipped_at=now,
                lines=shipped_now,
            )
        for sku in unknown:
            tx.add_event(
                "unknown_sku",
                f"order {order.name or order.external_id} on {order.channel} has SKU {sku!r}, "
                "which matches no master SKU; the line is recorded but holds no stock",
                level="warning",
                channel=order.channel,
                sku=sku,
                ref=ref,
            )
        self.republish(tx, touched)
        return OrderOutcome("created" if stored is None else "updated", tuple(unknown))

    def apply_shipment(self, tx: Tx, request: ShipmentRequest) -> ShipmentOutcome:
        """Record a shipment: on-hand and committed fall together; queue it for its channel."""
        order = tx.get_order(request.channel, request.order_id)
        if order is None:
            raise UnknownOrder(f"no order {request.order_id!r} on channel {request.channel!r}")
        if request.tracking_number:
            existing = tx.find_shipment(request.channel, request.order_id, request.tracking_number)
            if existing is not None:
                return ShipmentOutcome(existing, created=False)
        if order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
            raise InvalidShipment(f"order {request.order_id} is {order.status}; nothing to ship")
        if order.fulfilled_by_channel:
            raise InvalidShipment(f"order {request.order_id} is fulfilled by the channel itself")
        location = request.location or self.rules.ship_location(request.channel)
        if location not in self.rules.locations:
            raise UnknownLocation(f"unknown location {location!r}")
        quantities = _shipment_quantities(order, request.lines)

        held_before = commitment(order)
        ref = f"{order.channel}:{order.external_id}"
        touched: set[str] = set()
        for line_id, qty in quantities.items():
            line = order.lines[line_id]
            line.shipped += qty
            for comp, per_unit in line.components.items():
                tx.add_movement(comp, location, -qty * per_unit, "shipped", ref)
                touched.add(comp)
        order.status = str(derive_status(OrderStatus(order.status), order.lines.values()))
        order.reserves = reserves_stock(
            order.status,
            unpaid_reserves=self.rules.unpaid_reserves,
            fulfilled_by_channel=False,
        )
        tx.save_order(order, new_lines=())
        touched |= self._move_commitment(tx, held_before, commitment(order))
        shipped_at = request.shipped_at or tx.now()
        shipment_id = tx.add_shipment(
            channel=order.channel,
            external_id=order.external_id,
            carrier=request.carrier,
            tracking_number=request.tracking_number,
            tracking_url=request.tracking_url,
            location=location,
            source="merchant",
            shipped_at=shipped_at,
            lines=quantities,
        )
        tx.enqueue(
            order.channel,
            "shipment",
            str(shipment_id),
            {
                "shipment_id": shipment_id,
                "order_id": order.external_id,
                "carrier": request.carrier,
                "tracking_number": request.tracking_number,
                "tracking_url": request.tracking_url,
                "shipped_at": shipped_at.isoformat(),
                "lines": [
                    {
                        "line_id": line_id,
                        "sku": order.lines[line_id].channel_sku,
                        "qty": qty,
                    }
                    for line_id, qty in quantities.items()
                ],
            },
            None,
        )
        self.republish(tx, touched)
        return ShipmentOutcome(shipment_id, created=True, lines=quantities)

    # -- stock -------------------------------------------------------------------------------

    def apply_movement(
        self,
        tx: Tx,
        sku: str,
        delta: int,
        *,
        location: str | None = None,
        reason: str = "adjustment",
        ref: str | None = None,
    ) -> int:
        """Add `delta` units at a location (receipt, adjustment, return); returns on-hand there."""
        if abs(delta) > MAX_UNITS:
            raise InvalidStockChange(f"{sku}: a movement of {delta} units is not believable "
                                     f"(at most {MAX_UNITS:,})")
        location = self._location(location)
        self._require_stockable(tx, sku)
        tx.ensure_sku(sku, title=self.rules.sku_titles.get(sku))
        if delta:
            tx.add_movement(sku, location, delta, reason, ref)
            self.republish(tx, {sku})
        return tx.on_hand(sku, location)

    def set_count(
        self,
        tx: Tx,
        sku: str,
        qty: int,
        *,
        location: str | None = None,
        reason: str = "count",
        ref: str | None = None,
    ) -> int:
        """Set a SKU's counted units at a location, recording the difference as a movement."""
        self.set_counts(tx, [(sku, location, qty)], reason=reason, ref=ref)
        return qty

    def set_counts(
        self,
        tx: Tx,
        counts: Iterable[tuple[str, str | None, int]],
        *,
        reason: str = "count",
        ref: str | None = None,
    ) -> int:
        """Set many (sku, location, qty) counts in one unit; republish once; return SKUs changed."""
        touched: set[str] = set()
        for sku, location, qty in counts:
            if qty < 0:
                raise InvalidStockChange(f"{sku}: a count cannot be negative ({qty})")
            if qty > MAX_UNITS:
                raise InvalidStockChange(f"{sku}: a count of {qty} units is not believable "
                                         f"(at most {MAX_UNITS:,})")
            where = self._location(location)
            self._require_stockable(tx, sku)
            tx.ensure_sku(sku, title=self.rules.sku_titles.get(sku))
            delta = qty - tx.on_hand(sku, where)
            if delta:
                tx.add_movement(sku, where, delta, reason, ref)
                touched.add(sku)
        self.republish(tx, touched)
        return len(touched)

    # -- channel levels ----------------------------------------------------------------------

    def observe_level(self, tx: Tx, channel: str, sku: str, observed: int) -> DriftOutcome:
        """Compare a channel's level with what it should be; import the drift or push again."""
        ch = self.rules.channels.get(channel)
        if ch is None:
            raise UnknownChannel(f"unknown channel {channel!r}")
        expected = self._expected_channel_qty(tx, channel, sku)
        now = tx.now()
        tx.set_seen(channel, sku, observed, now)
        if expected == observed:
            listing = tx.get_listing(channel, sku)
            if (
                listing is not None
                and listing.target_qty is not None
                and listing.target_qty != observed
                and not tx.has_queued(channel, "stock", sku)
            ):
                # In step with what we last knew, yet not showing the number it should, and
                # nothing on its way: the push that would fix it was lost (a compare-and-set
                # went stale and the re-read found no drift). Queue it again.
                tx.enqueue(channel, "stock", sku, listing.target_qty, observed)
                return DriftOutcome(expected, observed, "requeued")
            return DriftOutcome(expected, observed, "none")
        if expected is None:
            self._push_current(tx, channel, sku, observed)
            return DriftOutcome(None, observed, "first_seen")
        drift = observed - expected
        importing = ch.stock_edits == "import" and tx.sku_kind(sku) == "simple"
        tx.add_event(
            "drift",
            f"{sku} on {channel} shows {observed}, expected {expected} (drift {drift:+d}); "
            + ("imported as a stock movement" if importing else "pushing the right number again"),
            level="warning",
            channel=channel,
            sku=sku,
            data={"expected": expected, "observed": observed},
        )
        if importing:
            tx.add_movement(sku, self.rules.ship_location(channel), drift, "channel_edit", channel)
            # The channel's number is now the baseline its future drift is measured from; it
            # may still differ from what this channel should show (a buffer, an allocation).
            tx.set_published(channel, sku, observed, now)
            self._push_current(tx, channel, sku, observed)
            return DriftOutcome(expected, observed, "imported")
        self._push_current(tx, channel, sku, observed)
        return DriftOutcome(expected, observed, "repush")

    def confirm_stock_push(self, tx: Tx, outbox_id: int) -> None:
        """The channel accepted a stock push: mark it done and make its value the baseline."""
        row = tx.get_outbox(outbox_id)
        if row is None or row.kind != "stock":
            raise InvalidStockChange(f"no stock push with outbox id {outbox_id}")
        tx.set_outbox_state(outbox_id, "done")
        accepted = int(json.loads(row.value))
        tx.set_published(row.channel, row.key, accepted, tx.now())
        # A newer value queued while this one was in flight expected the channel's number from
        # before it: it shows `accepted` now, so compare-and-set against that.
        if row.expected is not None:
            tx.rebase_pending(row.channel, row.key, accepted)

    # -- publishing --------------------------------------------------------------------------

    def recompute_all(self, tx: Tx) -> int:
        """Recompute every published number; queue those that changed. Returns rows queued."""
        on_hand = tx.all_on_hand()
        committed = tx.all_committed()
        bundles = tx.all_bundles()
        simple = [s for s in committed if s not in bundles]
        return self._publish(tx, simple, bundles, on_hand, committed, tx.all_targets())

    def republish(self, tx: Tx, touched: Iterable[str]) -> int:
        """Recompute the published numbers of these SKUs (and bundles using them); queue changes.

        The runtime calls this in slices of the catalog, so one large recompute never holds the
        writer long enough to delay a webhook. Returns rows queued.
        """
        touched = set(touched)
        if not touched:
            return 0
        bundles = tx.bundles_containing(touched)
        bundles.update(tx.bundle_components(s for s in touched if tx.sku_kind(s) == "bundle"))
        simple = [s for s in touched if s not in bundles and tx.sku_kind(s) == "simple"]
        needed = set(simple).union(*bundles.values()) if bundles else set(simple)
        on_hand = tx.on_hand_by_location(needed)
        committed = tx.committed(needed)
        targets = tx.targets([*simple, *bundles])
        return self._publish(tx, simple, bundles, on_hand, committed, targets)

    def _publish(
        self,
        tx: Tx,
        simple: Iterable[str],
        bundles: Mapping[str, Mapping[str, int]],
        on_hand: Mapping[str, Mapping[str, int]],
        committed: Mapping[str, int],
        targets: Mapping[tuple[str, str], int | None],
    ) -> int:
        simple = list(simple)
        changed: list[tuple[str, str, int]] = []
        for ch in self.rules.enabled_channels():
            locations = ch.locations

            def available(sku: str, locations: tuple[str, ...] = locations) -> int:
                held = on_hand.get(sku, {})
                return available_quantity(
                    sum(held.get(loc, 0) for loc in locations), committed.get(sku, 0)
                )

            for sku in simple:
                qty = self.rules.published(ch.name, sku, available(sku))
                if targets.get((ch.name, sku)) != qty:
                    changed.append((ch.name, sku, qty))
            for bundle, components in bundles.items():
                avail = bundle_available(components, {c: available(c) for c in components})
                qty = self.rules.published(ch.name, bundle, avail)
                if targets.get((ch.name, bundle)) != qty:
                    changed.append((ch.name, bundle, qty))
        tx.set_targets(changed)
        expected = tx.expected_levels({sku for _, sku, _ in changed})
        tx.enqueue_many(
            (channel, "stock", sku, qty, expected.get((channel, sku)))
            for channel, sku, qty in changed
        )
        return len(changed)

    def _push_current(self, tx: Tx, channel: str, sku: str, observed: int) -> None:
        """Queue the current published number for a (channel, SKU) the channel shows wrongly."""
        self.republish(tx, {sku})
        listing = tx.get_listing(channel, sku)
        if listing is not None and listing.target_qty is not None:
            if listing.target_qty != observed:
                tx.enqueue(channel, "stock", sku, listing.target_qty, observed)

    def _expected_channel_qty(self, tx: Tx, channel: str, sku: str) -> int | None:
        """What the channel should show now: its last known number less its own sales since."""
        return tx.expected_level(channel, sku)

    # -- helpers -----------------------------------------------------------------------------

    def _move_commitment(self, tx: Tx, before: Counter[str], after: Counter[str]) -> set[str]:
        moved = set()
        for sku in set(before) | set(after):
            delta = after.get(sku, 0) - before.get(sku, 0)
            if delta:
                tx.add_committed(sku, delta)
                moved.add(sku)
        return moved

    def _master_sku(self, tx: Tx, channel: str, channel_sku: str | None) -> str | None:
        master = self.rules.map_sku(channel, channel_sku)
        if master is None or tx.sku_kind(master) is None:
            return None
        return master

    def _components(self, tx: Tx, master: str | None) -> dict[str, int]:
        if master is None:
            return {}
        if tx.sku_kind(master) == "bundle":
            return dict(tx.bundle_components([master]).get(master, {}))
        return {master: 1}

    def _location(self, location: str | None) -> str:
        if location is None:
            return self.rules.locations[0]
        if location not in self.rules.locations:
            known = ", ".join(self.rules.locations)
            raise UnknownLocation(f"unknown location {location!r} (known: {known})")
        return location

    def _require_stockable(self, tx: Tx, sku: str) -> None:
        if not sku or not sku.strip():
            raise InvalidStockChange("a SKU cannot be empty")
        if tx.sku_kind(sku) == "bundle":
            raise InvalidStockChange(
                f"{sku} is a bundle: it has no stock of its own; change its components instead"
            )


def _shipment_quantities(order: StoredOrder, asked: Mapping[str, int] | None) -> dict[str, int]:
    """Turn 'line id or SKU -> units' into 'line id -> units', refusing more than remains."""
    quantities: dict[str, int] = {}
    if asked is None:
        quantities = {ln.line_id: ln.remaining for ln in order.lines.values() if ln.remaining > 0}
        if not quantities:
            raise InvalidShipment(f"order {order.external_id} has nothing left to ship")
        return quantities
    for key, qty in asked.items():
        if qty <= 0:
            raise InvalidShipment(f"{key}: quantity must be positive, got {qty}", key=key)
        if key in order.lines:
            candidates = [order.lines[key]]
        else:
            candidates = [ln for ln in order.lines.values() if key in (ln.sku, ln.channel_sku)]
            if not candidates:
                raise InvalidShipment(
                    f"order {order.external_id} has no line or SKU {key!r}", key=key
                )
        left = qty
        for line in candidates:
            room = line.remaining - quantities.get(line.line_id, 0)
            take = min(room, left)
            if take > 0:
                quantities[line.line_id] = quantities.get(line.line_id, 0) + take
                left -= take
        if left:
            raise InvalidShipment(
                f"order {order.external_id}: asked to ship {qty} of {key}, "
                f"only {qty - left} left to ship",
                key=key,
            )
    return quantities


def _require_plausible(order: ChannelOrder) -> None:
    """Refuse an order with a line count past MAX_UNITS (or below zero past it): garbage from the
    channel, which SQLite could not even store past 2**63."""
    for line in order.lines:
        for name in ("quantity", "shipped", "cancelled", "returned"):
            value = getattr(line, name)
            if abs(value) > MAX_UNITS:
                raise ImplausibleOrder(
                    f"order {order.external_id} on {order.channel}: line {line.line_id} has a "
                    f"{name} past {MAX_UNITS:,} units; refused as garbage from the channel"
                )
