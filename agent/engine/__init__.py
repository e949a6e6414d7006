"""The stock and order engine: pure decisions, applied through one store transaction each."""

from agent.engine.engine import (
    DriftOutcome,
    Engine,
    OrderOutcome,
    ShipmentOutcome,
    ShipmentRequest,
)
from agent.engine.errors import (
    EngineError,
    InvalidShipment,
    InvalidStockChange,
    UnknownChannel,
    UnknownLocation,
    UnknownOrder,
)
from agent.engine.rules import ChannelRules, QtyRule, Rules

__all__ = [
    "ChannelRules",
    "DriftOutcome",
    "Engine",
    "EngineError",
    "InvalidShipment",
    "InvalidStockChange",
    "OrderOutcome",
    "QtyRule",
    "Rules",
    "ShipmentOutcome",
    "ShipmentRequest",
    "UnknownChannel",
    "UnknownLocation",
    "UnknownOrder",
]
