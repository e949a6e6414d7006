"""`storesync demo`: channel sandboxes, simulated shoppers and a warehouse, and the real agent."""
