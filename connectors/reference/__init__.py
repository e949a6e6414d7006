"""The reference channel: the simplest API that meets the connector contract, and its sandbox."""
