"""The WooCommerce channel: REST API wc/v3 connector, webhooks, and its sandbox."""
