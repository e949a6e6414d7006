"""Stock math from DESIGN.md, as pure functions of numbers.

available(s)   = on_hand(s) - committed(s)            (negative means oversold)
available(b)   = min over components k of floor(available(k) / qty_k)
published(c,s) = clamp(floor(available * allocation% / 100) - buffer, 0, max_qty), or fixed_qty
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.engine.rules import ResolvedRule

# The largest count or movement storesync takes: no shelf holds a billion units of one SKU, and
# numbers past 2**63 cannot even be stored (SQLite INTEGER), so a bigger one is a typo.
MAX_UNITS = 1_000_000_000


def available_quantity(on_hand: int, committed: int) -> int:
    """Units free to sell; negative when more is promised than is on the shelf."""
    return on_hand - committed


def bundle_available(components: Mapping[str, int], available: Mapping[str, int]) -> int:
    """How many whole bundles the components' availability makes."""
    if not components:
        return 0
    return min(available.get(comp, 0) // qty for comp, qty in components.items())


def published_quantity(available: int, rule: ResolvedRule) -> int:
    """The number a channel should show, never negative and never above available - buffer."""
    if rule.fixed_qty is not None:
        return rule.fixed_qty
    share = (max(available, 0) * rule.allocation_pct) // 100
    qty = max(share - rule.buffer, 0)
    if rule.max_qty is not None:
        qty = min(qty, rule.max_qty)
    return qty
