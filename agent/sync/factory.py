"""Building each channel's connector from its config: the one place that knows every kind."""

from __future__ import annotations

from agent.config import BaseChannel, ReferenceChannel, SyncConfig, WooCommerceChannel
from connectors.base import Connector


class NoConnector(Exception):
    """This kind of channel has no connector in this version; the channel is paused."""


def build_connector(name: str, channel: BaseChannel, sync: SyncConfig) -> Connector:
    """A connector for one [channels.<name>] table."""
    if isinstance(channel, ReferenceChannel):
        from connectors.reference.connector import ReferenceConnector

        return ReferenceConnector(
            name,
            api_url=str(channel.api_url),
            api_key=channel.api_key.reveal(),
            webhook_secret=channel.webhook_secret.reveal() if channel.webhook_secret else None,
            first_poll_window=sync.first_poll_window,
            order_lookback=sync.order_lookback,
        )
    if isinstance(channel, WooCommerceChannel):
        from connectors.woocommerce.connector import WooCommerceConnector

        return WooCommerceConnector(
            name,
            api_url=str(channel.api_url),
            consumer_key=channel.consumer_key.reveal(),
            consumer_secret=channel.consumer_secret.reveal(),
            webhook_secret=channel.webhook_secret.reveal() if channel.webhook_secret else None,
            auth=channel.auth,
            shipment_tracking=channel.shipment_tracking,
            first_poll_window=sync.first_poll_window,
            order_lookback=sync.order_lookback,
        )
    raise NoConnector(f"storesync has no {channel.kind} connector yet; channel {name} is paused")
