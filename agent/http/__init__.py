"""The agent's two HTTP listeners: webhooks (may face the internet) and ops (loopback)."""
