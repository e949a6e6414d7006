"""Webhook signatures as Shopify, WooCommerce and the reference channel make them.

Each signs the raw request body with HMAC-SHA256 and a shared secret, base64-encoded, in a header
of its own (Shopify: https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook;
WooCommerce: class-wc-webhook.php generate_signature()). Verification uses the raw bytes, never a
re-serialized body, and compares in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from connectors.base import WebhookRejected


def sign_hmac_sha256(secret: str, raw_body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)): what the channel sends, and what sandboxes and tests
    sign with (Stripe ships the same helper "for signing payloads in unit tests")."""
    digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value by case-insensitive name (plain dicts included)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def check_hmac_sha256(
    secret: str | None,
    headers: Mapping[str, str],
    raw_body: bytes,
    signature_header: str,
    *,
    no_secret: str = "no webhook secret is configured for this channel",
) -> None:
    """Raise WebhookRejected unless `signature_header` signs `raw_body` with `secret`."""
    if not secret:
        raise WebhookRejected(no_secret)
    provided = header(headers, signature_header)
    if not provided or not provided.strip():
        raise WebhookRejected(f"missing {signature_header}")
    try:
        provided_digest = base64.b64decode(provided.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRejected(f"malformed {signature_header}") from exc
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, provided_digest):
        raise WebhookRejected("signature does not match the body")
