"""eBay: the Sell Fulfillment and Inventory APIs (client, connector, order mapping, sandbox)."""
