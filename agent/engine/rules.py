"""The merchant's stock rules, resolved: SKU-on-channel, then SKU, then channel, then global."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.engine.stock_math import published_quantity

if TYPE_CHECKING:
    from agent.config import Config


@dataclass(frozen=True, slots=True)
class QtyRule:
    """Overrides for how a published number is computed; None means "inherit"."""

    buffer: int | None = None
    allocation_pct: int | None = None
    max_qty: int | None = None
    fixed_qty: int | None = None


@dataclass(frozen=True, slots=True)
class ResolvedRule:
    """A rule with every setting decided."""

    buffer: int
    allocation_pct: int
    max_qty: int | None
    fixed_qty: int | None


@dataclass(frozen=True, slots=True)
class ChannelRules:
    """What the engine needs to know of one channel."""

    name: str
    kind: str
    locations: tuple[str, ...]
    stock_edits: str = "overwrite"
    sku_map: Mapping[str, str] = field(default_factory=dict)
    rule: QtyRule = QtyRule()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything from the config that decides stock and published numbers."""

    locations: tuple[str, ...]
    channels: Mapping[str, ChannelRules]
    defaults: QtyRule = QtyRule(buffer=0, allocation_pct=100)
    unpaid_reserves: bool = True
    refund_restocks: bool = True
    bundles: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    sku_rules: Mapping[str, QtyRule] = field(default_factory=dict)
    sku_channel_rules: Mapping[tuple[str, str], QtyRule] = field(default_factory=dict)
    sku_titles: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        """Build the rules from a validated config."""
        locations = tuple(loc.name for loc in config.locations)
        channels = {
            name: ChannelRules(
                name=name,
                kind=ch.kind,
                locations=tuple(ch.locations) or locations,
                stock_edits=ch.stock_edits,
                sku_map=dict(ch.sku_map),
                rule=QtyRule(ch.buffer, ch.allocation_pct, ch.max_qty),
                enabled=ch.enabled,
            )
            for name, ch in config.channels.items()
        }
        sku_rules: dict[str, QtyRule] = {}
        sku_channel_rules: dict[tuple[str, str], QtyRule] = {}
        titles: dict[str, str] = {}
        for sku, over in config.skus.items():
            sku_rules[sku] = QtyRule(over.buffer, over.allocation_pct, over.max_qty, over.fixed_qty)
            if over.title:
                titles[sku] = over.title
            for ch_name, ch_over in over.channels.items():
                sku_channel_rules[(sku, ch_name)] = QtyRule(
                    ch_over.buffer, ch_over.allocation_pct, ch_over.max_qty, ch_over.fixed_qty
                )
        for bundle in config.bundles:
            if bundle.title:
                titles[bundle.sku] = bundle.title
        return cls(
            locations=locations,
            channels=channels,
            defaults=QtyRule(
                buffer=config.stock.buffer,
                allocation_pct=config.stock.allocation_pct,
                max_qty=config.stock.max_qty,
            ),
            unpaid_reserves=config.stock.unpaid_reserves,
            refund_restocks=config.stock.refund_restocks,
            bundles={b.sku: dict(b.components) for b in config.bundles},
            sku_rules=sku_rules,
            sku_channel_rules=sku_channel_rules,
            sku_titles=titles,
        )

    def enabled_channels(self) -> list[ChannelRules]:
        """Channels that receive published numbers."""
        return [ch for ch in self.channels.values() if ch.enabled]

    def resolve(self, channel: str, sku: str) -> ResolvedRule:
        """Decide each setting by precedence: SKU on channel, SKU, channel, global."""
        layers = (
            self.sku_channel_rules.get((sku, channel)),
            self.sku_rules.get(sku),
            self.channels[channel].rule,
            self.defaults,
        )

        def pick(attr: str) -> int | None:
            for layer in layers:
                if layer is not None and getattr(layer, attr) is not None:
                    return int(getattr(layer, attr))
            return None

        # fixed_qty is a SKU-level decision only: a channel-wide fixed number would make no sense.
        fixed = next(
            (layer.fixed_qty for layer in layers[:2] if layer and layer.fixed_qty is not None),
            None,
        )
        allocation = pick("allocation_pct")
        return ResolvedRule(
            buffer=pick("buffer") or 0,
            allocation_pct=100 if allocation is None else allocation,
            max_qty=pick("max_qty"),
            fixed_qty=fixed,
        )

    def published(self, channel: str, sku: str, available: int) -> int:
        """The number to show on `channel` for `sku`, given what is available to that channel."""
        return published_quantity(available, self.resolve(channel, sku))

    def map_sku(self, channel: str, channel_sku: str | None) -> str | None:
        """The master SKU a channel SKU stands for (sku_map first, then the same text)."""
        if not channel_sku:
            return None
        ch = self.channels.get(channel)
        if ch is not None and channel_sku in ch.sku_map:
            return ch.sku_map[channel_sku]
        return channel_sku

    def ship_location(self, channel: str) -> str:
        """Where a channel's orders ship from: the first location it sells from."""
        return self.channels[channel].locations[0]
