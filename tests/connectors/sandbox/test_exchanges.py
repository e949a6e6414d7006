"""Exchange recording over real loopback: what a test that checks API shapes gets to see.

The reference sandbox serves the API; a small subclass adds a form-encoded token endpoint and a
plain-text endpoint, the two body kinds the reference API itself never uses.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from connectors.reference.sandbox import DEFAULT_API_KEY, ReferenceSandbox
from connectors.sandbox import SANDBOXES, ManualClock, Served, json_response, serve
from connectors.sandbox.exchanges import REDACTED
from tests.connectors.sandbox.test_sandbox_command import RUNNER, read_url, start, stop

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


class TokenReferenceSandbox(ReferenceSandbox):
    """The reference API plus an OAuth-like token endpoint (form in, token JSON out)."""

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_post("/auth/token", self._token)
        app.router.add_put("/upload/{name}", self._upload)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()  # still readable: the recorder's read is cached
        refresh_token = form.get("refresh_token")
        assert isinstance(refresh_token, str)
        return json_response(
            {
                "access_token": f"at-for-{refresh_token}",
                "token_type": "bearer",
                "expires_in": 3600,
            }
        )

    async def _upload(self, request: web.Request) -> web.Response:
        text = await request.text()
        return web.Response(text=f"stored {len(text)} chars", content_type="text/plain")


@dataclass
class Ref:
    sandbox: TokenReferenceSandbox
    served: Served
    http: httpx.AsyncClient

    async def exchanges(self, **params: Any) -> dict[str, Any]:
        response = await self.http.get("/_control/exchanges", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def record(self, on: bool) -> dict[str, Any]:
        response = await self.http.put("/_control/exchanges", json={"record": on})
        assert response.status_code == 200, response.text
        return response.json()


async def _start(**options: Any) -> tuple[TokenReferenceSandbox, Served]:
    sandbox = TokenReferenceSandbox(clock=ManualClock(), seed=7, **options)
    sandbox.seed_catalog({"SKU-1": 5, "SKU-2": 0})
    return sandbox, await serve(sandbox.build_app())


@pytest.fixture
async def ref() -> AsyncIterator[Ref]:
    sandbox, served = await _start()
    async with httpx.AsyncClient(base_url=served.url, timeout=5, headers=AUTH) as http:
        yield Ref(sandbox, served, http)
    await served.close()


@pytest.fixture
async def recording() -> AsyncIterator[Ref]:
    sandbox, served = await _start(record_exchanges=True)
    async with httpx.AsyncClient(base_url=served.url, timeout=5, headers=AUTH) as http:
        yield Ref(sandbox, served, http)
    await served.close()


async def test_recording_is_off_by_default(ref: Ref) -> None:
    assert (await ref.http.get("/listings")).status_code == 200
    log = await ref.exchanges()
    assert log["recording"] is False and log["exchanges"] == []


async def test_put_switches_recording_on_and_off(ref: Ref) -> None:
    assert (await ref.record(True))["recording"] is True
    await ref.http.get("/listings", params={"per_page": 1})
    assert (await ref.record(False))["recording"] is False
    await ref.http.get("/listings")
    log = await ref.exchanges()
    assert [(e["route"], e["query"]) for e in log["exchanges"]] == [
        ("GET /listings", {"per_page": ["1"]})
    ]


@pytest.mark.parametrize("body", [{"record": "yes"}, {}, {"record": True, "extra": 1}, [True]])
async def test_put_refuses_anything_but_a_boolean_switch(ref: Ref, body: Any) -> None:
    response = await ref.http.put("/_control/exchanges", json=body)
    assert response.status_code == 400
    assert (await ref.exchanges())["recording"] is False


async def test_the_command_line_factories_pass_the_keyword_through() -> None:
    for kind, factory in SANDBOXES.items():
        assert factory(record_exchanges=True).exchanges.recording is True, kind
        assert factory().exchanges.recording is False, kind


def test_storesync_sandbox_record_exchanges_flag() -> None:
    proc = start(
        [sys.executable, "-c", RUNNER, "sandbox", "reference", "--port", "0", "--record-exchanges"]
    )
    try:
        url = read_url(proc)
        assert httpx.get(f"{url}/listings", headers=AUTH, timeout=5).status_code == 200
        log = httpx.get(f"{url}/_control/exchanges", timeout=5).json()
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert log["recording"] is True
    assert [e["route"] for e in log["exchanges"]] == ["GET /listings"]


async def test_request_and_response_bodies_are_captured(recording: Ref) -> None:
    listings = (await recording.http.get("/listings")).json()["listings"]
    listing_id = next(item["id"] for item in listings if item["sku"] == "SKU-1")
    push = {"items": [{"listing_id": listing_id, "quantity": 3}]}
    answer = await recording.http.post(
        "/stock/batch", json=push, headers={"Idempotency-Key": "k-1"}
    )
    assert answer.status_code == 200
    assert recording.sandbox.truth()["listings"]["SKU-1"]["quantity"] == 3  # handler saw the body

    log = await recording.exchanges()
    first, second = log["exchanges"]
    assert first["index"] == 0 and second["index"] == 1 and log["next"] == 2
    assert first["method"] == "GET" and first["path"] == "/listings"
    assert first["status"] == 200 and first["fault"] is None
    assert first["request_json"] is None and first["request_text"] is None
    assert first["response_content_type"] == "application/json"
    assert first["response_json"]["listings"] == listings
    assert second["route"] == "POST /stock/batch"
    assert second["request_content_type"] == "application/json"
    assert second["request_json"] == push
    assert second["request_headers"]["idempotency-key"] == "k-1"
    assert second["response_json"] == answer.json()
    assert second["response_headers"]["content-type"].startswith("application/json")
    assert "x-ratelimit-limit" in second["response_headers"]
    assert "date" not in second["response_headers"]
    assert second["at"] == recording.sandbox.clock.now().timestamp()


async def test_route_templates_errors_and_the_route_filter(recording: Ref) -> None:
    missing = await recording.http.get("/orders/nope")
    assert missing.status_code == 404 and missing.json()["error"]
    await recording.http.get("/listings")
    await recording.http.get("/no/such/path")

    only = (await recording.exchanges(route="GET /orders/{id}"))["exchanges"]
    assert [(e["path"], e["status"]) for e in only] == [("/orders/nope", 404)]
    assert only[0]["response_json"] == missing.json()  # raised JsonError bodies are kept
    unmatched = (await recording.exchanges(route="GET (unmatched)"))["exchanges"]
    assert [e["path"] for e in unmatched] == ["/no/such/path"]


async def test_since_returns_only_newer_exchanges(recording: Ref) -> None:
    for _ in range(3):
        await recording.http.get("/listings")
    assert [e["index"] for e in (await recording.exchanges(since=2))["exchanges"]] == [2]
    assert (await recording.http.get("/_control/exchanges?since=x")).status_code == 400


async def test_control_requests_are_never_recorded(recording: Ref) -> None:
    await recording.http.post(
        "/_control/listings", json={"listings": [{"sku": "A", "quantity": 1}]}
    )
    await recording.http.get("/_control/state")
    assert (await recording.exchanges())["exchanges"] == []


async def test_credentials_are_redacted_everywhere(recording: Ref) -> None:
    response = await recording.http.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "rt-secret",
            "client_id": "app",
            "code": "oauth-code",
        },
        headers={"x-amz-access-token": "atz-secret"},
    )
    assert response.json()["access_token"] == "at-for-rt-secret"  # the handler read the form
    await recording.http.get(
        "/listings", params={"consumer_key": "ck_secret", "consumer_secret": "cs_secret", "page": 1}
    )

    # In JSON a "code" is an error code, not an OAuth code: kept.
    await recording.http.put("/upload/doc", json={"code": "InvalidInput", "client_secret": "cs2"})

    token, listing, upload = (await recording.exchanges())["exchanges"]
    assert token["request_content_type"] == "application/x-www-form-urlencoded"
    assert token["request_form"] == {
        "grant_type": ["refresh_token"],
        "refresh_token": [REDACTED],
        "client_id": ["app"],
        "code": [REDACTED],
    }
    assert token["request_json"] is None
    assert token["request_headers"]["authorization"] == f"Bearer {REDACTED}"
    assert token["request_headers"]["x-amz-access-token"] == REDACTED
    assert token["response_json"] == {
        "access_token": REDACTED,
        "token_type": "bearer",
        "expires_in": 3600,
    }
    assert listing["query"] == {
        "consumer_key": [REDACTED],
        "consumer_secret": [REDACTED],
        "page": ["1"],
    }
    assert upload["request_json"] == {"code": "InvalidInput", "client_secret": REDACTED}
    everything = str(await recording.exchanges())
    secrets = ("rt-secret", "oauth-code", "atz-secret", "ck_secret", "cs_secret", "cs2")
    for secret in (*secrets, DEFAULT_API_KEY):
        assert secret not in everything


async def test_other_bodies_are_kept_as_text(recording: Ref) -> None:
    response = await recording.http.put(
        "/upload/doc%2Fv1", content=b"<feed>1</feed>", headers={"Content-Type": "text/xml"}
    )
    assert response.text == "stored 14 chars"
    (upload,) = (await recording.exchanges())["exchanges"]
    assert upload["route"] == "PUT /upload/{name}"
    assert upload["path"] == "/upload/doc/v1" and upload["raw_path"] == "/upload/doc%2Fv1"
    assert upload["request_text"] == "<feed>1</feed>" and upload["request_json"] is None
    assert upload["response_content_type"] == "text/plain"
    assert upload["response_text"] == "stored 14 chars" and upload["response_json"] is None


async def test_injected_faults_are_flagged(recording: Ref) -> None:
    faults = {"statuses": [503, 429, 0]}
    assert (await recording.http.put("/_control/faults", json=faults)).status_code == 200
    statuses = [(await recording.http.get("/listings")).status_code for _ in range(3)]
    assert statuses == [503, 429, 200]
    await recording.http.put("/_control/faults", json={"truncate_rate": 1.0})
    truncated = await recording.http.get("/listings")
    await recording.http.put("/_control/faults", json={"truncate_rate": 0.0, "reset_rate": 1.0})
    with pytest.raises(httpx.TransportError):
        await recording.http.get("/listings")

    log = (await recording.exchanges())["exchanges"]
    assert [(e["status"], e["fault"]) for e in log] == [
        (503, "scripted"),
        (429, "scripted"),
        (200, None),
        (200, "truncate"),
        (None, "reset"),
    ]
    assert log[1]["response_headers"]["retry-after"] == "1"
    assert log[3]["response_json"] is None and log[3]["response_text"] == truncated.text
    assert log[4]["response_json"] is None and log[4]["response_headers"] == {}


async def test_the_log_is_bounded_and_says_what_it_dropped() -> None:
    sandbox, served = await _start(record_exchanges=True, exchange_log_size=3)
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=5, headers=AUTH) as http:
            for page in range(1, 6):
                await http.get("/listings", params={"page": page})
            log = (await http.get("/_control/exchanges")).json()
    finally:
        await served.close()
    assert [e["query"]["page"] for e in log["exchanges"]] == [["3"], ["4"], ["5"]]
    assert log["dropped"] == 2 and log["limit"] == 3 and log["next"] == 5


async def test_delete_and_reset_clear_the_log_but_keep_the_switch(recording: Ref) -> None:
    await recording.http.get("/listings")
    cleared = (await recording.http.delete("/_control/exchanges")).json()
    assert cleared["count"] == 0 and cleared["recording"] is True and cleared["dropped"] == 0
    await recording.http.get("/listings")
    assert (await recording.http.post("/_control/reset")).status_code == 200
    log = await recording.exchanges()
    assert log["exchanges"] == [] and log["recording"] is True
    await recording.http.get("/listings")
    (after,) = (await recording.exchanges())["exchanges"]
    assert after["index"] == 2  # indexes keep counting, so a reader's `since` stays valid
