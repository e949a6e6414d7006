"""OAuth access tokens kept until shortly before they expire, one refresh at a time.

Shopify's client-credentials tokens, Amazon's Login with Amazon tokens and eBay's user tokens
all work this way: a grant answers `{"access_token", "expires_in"}`, the token is reused until
a margin before it expires, and callers waiting on an expired token share one refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from connectors.base import RetryableError
from connectors.http import json_body

REFRESH_MARGIN = timedelta(minutes=5)


def read_grant(
    response: httpx.Response, *, what: str, default_lifetime_s: float
) -> tuple[str, float]:
    """The access token and its lifetime in seconds from a token endpoint's answer."""
    body: Any = json_body(response, what=what)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise RetryableError(f"{what}: the answer carries no access_token")
    lifetime = body.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = default_lifetime_s
    return token, float(lifetime)


class TokenCache:
    """One access token, fetched by `grant()` when missing or within `margin` of expiry."""

    def __init__(
        self,
        grant: Callable[[], Awaitable[tuple[str, float]]],
        *,
        clock: Callable[[], datetime],
        margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self._grant = grant
        self._clock = clock
        self._margin = margin
        self._token: str | None = None
        self._until: datetime | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """A valid token; every caller waiting on an expired one shares a single refresh."""
        async with self._lock:
            now = self._clock()
            if self._token is None or self._until is None or now >= self._until - self._margin:
                token, lifetime = await self._grant()
                self._token, self._until = token, now + timedelta(seconds=lifetime)
            return self._token

    @property
    def expires_at(self) -> datetime | None:
        """When the current token expires (None before the first grant)."""
        return self._until

    def forget(self, token: str) -> None:
        """Drop `token` (the API refused it) so the next `get()` refreshes."""
        if self._token == token:
            self._token, self._until = None, None
