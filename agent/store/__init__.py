"""The SQLite store: schema, the single writer, and the repository units of work go through."""

from agent.store.database import Store, StoreClosed, StoreError
from agent.store.transaction import Tx

__all__ = ["Store", "StoreClosed", "StoreError", "Tx"]
