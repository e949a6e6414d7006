"""Which sandbox runs for which channel kind (`storesync sandbox KIND`, the demo, the tests)."""

from __future__ import annotations

from collections.abc import Callable
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


# Every factory accepts the SandboxBase keywords (clock, seed, webhook_url, webhook_secret,
# retry_delays, speed) plus `api_key`.
SANDBOXES: dict[str, Callable[..., SandboxBase]] = {
    "reference": _reference,
    "shopify": _shopify,
    "woocommerce": _woocommerce,
}
