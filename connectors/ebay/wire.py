"""eBay's wire conventions, shared by the client and the sandbox: paths, headers, scopes,
timestamps, the getOrders filter text and the error body.

Facts and sources: reference/channel-apis.md section 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

DEFAULT_API_URL = "https://api.ebay.com"
TOKEN_PATH = "/identity/v1/oauth2/token"
FULFILLMENT = "/sell/fulfillment/v1"
INVENTORY = "/sell/inventory/v1"

MARKETPLACE_HEADER = "X-EBAY-C-MARKETPLACE-ID"
DEFAULT_MARKETPLACE = "EBAY_US"

# The OAuth scopes storesync asks for when it refreshes the user token (OAS `security`):
# https://developer.ebay.com/api-docs/static/oauth-refresh-token-request.html
FULFILLMENT_SCOPE = "https://api.ebay.com/oauth/api_scope/sell.fulfillment"
INVENTORY_SCOPE = "https://api.ebay.com/oauth/api_scope/sell.inventory"
SCOPES = (FULFILLMENT_SCOPE, INVENTORY_SCOPE)

# Inventory API writes need a Content-Language; one per marketplace's main language.
# https://developer.ebay.com/api-docs/static/rest-request-components.html#HTTP
CONTENT_LANGUAGES: Mapping[str, str] = {
    "EBAY_US": "en-US",
    "EBAY_MOTORS_US": "en-US",
    "EBAY_CA": "en-CA",
    "EBAY_GB": "en-GB",
    "EBAY_AU": "en-AU",
    "EBAY_IE": "en-IE",
    "EBAY_DE": "de-DE",
    "EBAY_AT": "de-AT",
    "EBAY_CH": "de-CH",
    "EBAY_FR": "fr-FR",
    "EBAY_IT": "it-IT",
    "EBAY_ES": "es-ES",
    "EBAY_NL": "nl-NL",
    "EBAY_BE": "nl-BE",
    "EBAY_PL": "pl-PL",
}

# Characters the getOrders filter must carry percent-encoded (OAS getOrders `filter` note).
_FILTER_SAFE = ":,.-_"


def content_language(marketplace_id: str) -> str:
    """The Content-Language for Inventory writes on `marketplace_id` (en-US when unknown)."""
    return CONTENT_LANGUAGES.get(marketplace_id, "en-US")


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as eBay writes and reads timestamps."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """An eBay timestamp as an aware UTC datetime; ValueError when it is not one."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a zone: {text!r}")
    return moment.astimezone(UTC)


def encode_filter(text: str) -> str:
    """The filter value for a query string: `[ ] { | }` and the rest percent-encoded.

    Colons, commas and dots stay as eBay's own examples write them.
    """
    return quote(text, safe=_FILTER_SAFE)


def date_range_filter(field: str, start: datetime, end: datetime | None = None) -> str:
    """`field:[start..end]`, or `field:[start..]` for an open end."""
    end_text = format_time(end) if end is not None else ""
    return f"{field}:[{format_time(start)}..{end_text}]"


@dataclass(frozen=True, slots=True)
class ApiError:
    """One entry of an eBay `errors` (or `warnings`) array."""

    error_id: int | None
    domain: str
    category: str
    message: str
    long_message: str = ""

    def describe(self) -> str:
        """`errorId category: message` for logs and dead letters."""
        code = f"eBay error {self.error_id}" if self.error_id is not None else "eBay error"
        where = "/".join(part for part in (self.domain, self.category) if part)
        text = self.long_message or self.message
        return f"{code} ({where}): {text}" if where else f"{code}: {text}"


def read_errors(items: Any) -> list[ApiError]:
    """The entries of an `errors` or `warnings` array; anything malformed is skipped."""
    if not isinstance(items, list):
        return []
    errors: list[ApiError] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        error_id = item.get("errorId")
        errors.append(
            ApiError(
                error_id=error_id
                if isinstance(error_id, int) and not isinstance(error_id, bool)
                else None,
                domain=_text(item.get("domain")),
                category=_text(item.get("category")),
                message=_text(item.get("message")),
                long_message=_text(item.get("longMessage")),
            )
        )
    return errors


def error_body(
    error_id: int,
    domain: str,
    category: str,
    message: str,
    *,
    long_message: str | None = None,
    parameters: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """An eBay error response body: `{"errors": [one error]}`."""
    return {
        "errors": [
            error_entry(
                error_id,
                domain,
                category,
                message,
                long_message=long_message,
                parameters=parameters,
            )
        ]
    }


def error_entry(
    error_id: int,
    domain: str,
    category: str,
    message: str,
    *,
    long_message: str | None = None,
    parameters: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """One eBay Error object (the OAS `Error` schema)."""
    entry: dict[str, Any] = {
        "errorId": error_id,
        "domain": domain,
        "category": category,
        "message": message,
    }
    if long_message:
        entry["longMessage"] = long_message
    if parameters:
        entry["parameters"] = [{"name": name, "value": value} for name, value in parameters]
    return entry


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
