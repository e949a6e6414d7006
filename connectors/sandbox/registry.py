"""Which sandbox runs for which channel kind (`storesync sandbox KIND`, the demo, the tests), and
the config keys that point a channel of that kind at its sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.sandbox.app import SandboxBase


def _reference(**options: Any) -> SandboxBase:
    """The reference channel's fake API."""
    # Imported on use: channel sandboxes import this package, so a module-level import would
    # be circular.
    from connectors.reference.sandbox import ReferenceSandbox

    return ReferenceSandbox(**options)


def _shopify(**options: Any) -> SandboxBase:
    """Shopify's GraphQL Admin API, token minting and webhook behaviour."""
    from connectors.shopify.sandbox import ShopifySandbox

    return ShopifySandbox(**options)


def _woocommerce(**options: Any) -> SandboxBase:
    """WooCommerce's REST API (wc/v3) and webhook behaviour."""
    from connectors.woocommerce.sandbox import WooCommerceSandbox

    return WooCommerceSandbox(**options)


def _amazon(**options: Any) -> SandboxBase:
    """Amazon's SP-API: LWA tokens, Orders v0, Listings Items, Feeds, per-operation limits."""
    from connectors.amazon.sandbox import AmazonSandbox

    return AmazonSandbox(**options)


def _ebay(**options: Any) -> SandboxBase:
    """eBay's Sell Fulfillment and Sell Inventory APIs, OAuth and daily quotas."""
    from connectors.ebay.sandbox import EbaySandbox

    return EbaySandbox(**options)


# Every factory accepts the SandboxBase keywords (clock, seed, webhook_url, webhook_secret,
# retry_delays, speed) plus `api_key`.
SANDBOXES: dict[str, Callable[..., SandboxBase]] = {
    "reference": _reference,
    "shopify": _shopify,
    "woocommerce": _woocommerce,
    "amazon": _amazon,
    "ebay": _ebay,
}


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """A [channels.<name>] table's keys for a sandbox: plain values, and which key holds the
    sandbox's `api_key` (the caller writes it as a literal, an env or a file reference)."""

    plain: dict[str, Any]
    secret_key: str
    # Whether storesync hears this channel through webhooks (else it polls only).
    webhooks: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)


def _reference_keys(url: str) -> ChannelKeys:
    return ChannelKeys({"api_url": url}, "api_key")


def _shopify_keys(url: str) -> ChannelKeys:
    from connectors.shopify.sandbox import DEFAULT_API_VERSION, DEFAULT_SHOP

    return ChannelKeys(
        {"shop": DEFAULT_SHOP, "api_url": f"{url}/admin/api/{DEFAULT_API_VERSION}"},
        "access_token",
    )


def _woocommerce_keys(url: str) -> ChannelKeys:
    from connectors.woocommerce.sandbox import DEFAULT_CONSUMER_KEY

    # `--api-key` is the consumer secret; the consumer key is the sandbox's fixed one.
    return ChannelKeys(
        {"api_url": url, "consumer_key": DEFAULT_CONSUMER_KEY, "shipment_tracking": True},
        "consumer_secret",
    )


def _amazon_keys(url: str) -> ChannelKeys:
    from connectors.amazon.sandbox import (
        CLIENT_ID,
        CLIENT_SECRET,
        MARKETPLACE_ID,
        SELLER_ID,
        TOKEN_PATH,
    )

    # `--api-key` is the LWA refresh token; the token endpoint is the sandbox's own.
    return ChannelKeys(
        {
            "seller_id": SELLER_ID,
            "marketplace_ids": [MARKETPLACE_ID],
            "lwa_client_id": CLIENT_ID,
            "lwa_client_secret": CLIENT_SECRET,
            "api_url": url,
            "lwa_url": f"{url}{TOKEN_PATH}",
        },
        "refresh_token",
        webhooks=False,
    )


def _ebay_keys(url: str) -> ChannelKeys:
    from connectors.ebay.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    # The token endpoint is under api_url too; `--api-key` is the refresh token.
    return ChannelKeys(
        {"api_url": url, "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET},
        "refresh_token",
        webhooks=False,
    )


# kind -> the keys for a channel pointed at that kind's sandbox served at `url`.
SANDBOX_CHANNELS: dict[str, Callable[[str], ChannelKeys]] = {
    "reference": _reference_keys,
    "shopify": _shopify_keys,
    "woocommerce": _woocommerce_keys,
    "amazon": _amazon_keys,
    "ebay": _ebay_keys,
}
