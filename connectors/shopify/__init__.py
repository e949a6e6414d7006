"""The Shopify channel: GraphQL Admin API connector, REST-shaped webhooks, and its sandbox."""
