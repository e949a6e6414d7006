"""What the engine refuses, and why, in words a merchant can act on."""

from __future__ import annotations


class EngineError(ValueError):
    """A request the engine will not apply; nothing was changed."""


class UnknownChannel(EngineError):
    """The channel is not in the config."""


class UnknownLocation(EngineError):
    """The location is not in the config."""


class UnknownOrder(EngineError):
    """No such order in the store."""


class InvalidShipment(EngineError):
    """A shipment that does not fit its order (too many units, a cancelled order, ...)."""


class InvalidStockChange(EngineError):
    """A stock change that cannot be applied (a negative count, a bundle's own stock, ...)."""
