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

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        # The line id or SKU at fault, so a file's error can name the line that asked for it.
        self.key = key


class InvalidStockChange(EngineError):
    """A stock change that cannot be applied (a negative count, a bundle's own stock, ...)."""


class ImplausibleOrder(EngineError):
    """An order whose numbers no real sale has (a line of more than a billion units): a channel
    sending garbage. Refused before anything is written, so one such order holds up nothing."""
