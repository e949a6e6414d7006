"""Where connectors and the engine meet: polling, webhooks processing, pushing, health."""
