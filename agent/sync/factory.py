"""Building each channel's connector from its config: the one place that knows every kind."""

from __future__ import annotations

from agent.config import (
    AmazonChannel,
    BaseChannel,
    EbayChannel,
    ReferenceChannel,
    ShopifyChannel,
    SyncConfig,
    WooCommerceChannel,
)
from connectors.base import Connector
from connectors.http import Timeouts


class NoConnector(Exception):
    """This kind of channel has no connector in this version; the channel is paused."""


def build_connector(
    name: str, channel: BaseChannel, sync: SyncConfig, previous: Connector | None = None
) -> Connector:
    """A connector for one [channels.<name>] table; `previous`, the one it replaces on a
    reload, hands over rate-limit state the channel still holds against this account."""
    if isinstance(channel, ReferenceChannel):
        from connectors.reference.connector import ReferenceConnector

        return ReferenceConnector(
            name,
            timeouts=timeouts(channel),
            api_url=str(channel.api_url),
            api_key=channel.api_key.reveal(),
            webhook_secret=channel.webhook_secret.reveal() if channel.webhook_secret else None,
            first_poll_window=sync.first_poll_window,
            order_lookback=sync.order_lookback,
        )
    if isinstance(channel, ShopifyChannel):
        from connectors.shopify.connector import ShopifyConnector

        return ShopifyConnector(
            name,
            timeouts=timeouts(channel),
            shop=channel.shop,
            api_url=str(channel.api_url) if channel.api_url else None,
            api_version=channel.api_version,
            access_token=channel.access_token.reveal() if channel.access_token else None,
            client_id=channel.client_id,
            client_secret=channel.client_secret.reveal() if channel.client_secret else None,
            webhook_secret=channel.webhook_secret.reveal() if channel.webhook_secret else None,
            location=channel.location,
            first_poll_window=sync.first_poll_window,
            order_lookback=sync.order_lookback,
            cost_bucket_size=channel.cost_bucket_size,
            cost_restore_rate=channel.cost_restore_rate,
        )
    if isinstance(channel, WooCommerceChannel):
        from connectors.woocommerce.connector import WooCommerceConnector

        return WooCommerceConnector(
            name,
            timeouts=timeouts(channel),
            api_url=str(channel.api_url),
            consumer_key=channel.consumer_key.reveal(),
            consumer_secret=channel.consumer_secret.reveal(),
            webhook_secret=channel.webhook_secret.reveal() if channel.webhook_secret else None,
            auth=channel.auth,
            shipment_tracking=channel.shipment_tracking,
            first_poll_window=sync.first_poll_window,
            order_lookback=sync.order_lookback,
        )
    if isinstance(channel, AmazonChannel):
        from connectors.amazon.client import API_URLS
        from connectors.amazon.connector import AmazonConnector

        api_url = str(channel.api_url) if channel.api_url else None
        same_account = (
            isinstance(previous, AmazonConnector)
            and previous.seller_id == channel.seller_id
            and previous.api_url == (api_url or API_URLS[channel.region])
        )
        return AmazonConnector(
            name,
            timeouts=timeouts(channel),
            seller_id=channel.seller_id,
            marketplace_ids=list(channel.marketplace_ids),
            region=channel.region,
            api_url=api_url,
            lwa_url=str(channel.lwa_url) if channel.lwa_url else None,
            lwa_client_id=channel.lwa_client_id,
            lwa_client_secret=channel.lwa_client_secret.reveal(),
            refresh_token=channel.refresh_token.reveal(),
            first_poll_window=sync.first_poll_window,
            order_lookback=sync.order_lookback,
            settle=channel.order_settle,
            feed_threshold=channel.feed_threshold,
            limiter=previous.limiter if same_account and isinstance(previous, AmazonConnector)
            else None,
        )
    if isinstance(channel, EbayChannel):
        from connectors.ebay.connector import EbayConnector

        return EbayConnector(
            name,
            timeouts=timeouts(channel),
            client_id=channel.client_id,
            client_secret=channel.client_secret.reveal(),
            refresh_token=channel.refresh_token.reveal(),
            marketplace_id=channel.marketplace_id,
            api_url=str(channel.api_url) if channel.api_url else None,
            token_url=str(channel.token_url) if channel.token_url else None,
            first_poll_window=sync.first_poll_window,
            order_lookback=sync.order_lookback,
            daily_limits={str(k): v for k, v in channel.daily_limits.items()} or None,
            revisions_per_day=channel.revisions_per_day,
        )
    raise NoConnector(f"storesync has no {channel.kind} connector yet; channel {name} is paused")


def connector_class(kind: str) -> type[Connector]:
    """The connector class for a channel kind (for its capabilities, before any config)."""
    if kind == "reference":
        from connectors.reference.connector import ReferenceConnector

        return ReferenceConnector
    if kind == "shopify":
        from connectors.shopify.connector import ShopifyConnector

        return ShopifyConnector
    if kind == "woocommerce":
        from connectors.woocommerce.connector import WooCommerceConnector

        return WooCommerceConnector
    if kind == "amazon":
        from connectors.amazon.connector import AmazonConnector

        return AmazonConnector
    if kind == "ebay":
        from connectors.ebay.connector import EbayConnector

        return EbayConnector
    raise NoConnector(f"storesync has no {kind} connector yet")


def timeouts(channel: BaseChannel) -> Timeouts:
    """The channel's `request_timeout` for each read, twice it for a whole call."""
    read_s = channel.request_timeout.total_seconds()
    return Timeouts(read_s=read_s, total_s=2 * read_s)
