"""Recorded sandbox exchanges checked against a model, and the document shapes the vendors' files
use only a little (base paths, shared and `$ref`'d parameters, nullable, status ranges).

The live test serves a tiny Amazon-shaped sandbox over loopback with recording on, the way a
channel's own spec test does with its real sandbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from connectors.sandbox import SandboxBase, Served, json_response, read_json, serve
from tests.specs import OpenApiModel, SpecViolation, amazon_model

ORDERS = "/orders/v0/orders"
ORDER = {
    "AmazonOrderId": "902-3159896-1390916",
    "PurchaseDate": "2024-03-11T13:16:24Z",
    "LastUpdateDate": "2024-03-11T14:00:00Z",
    "OrderStatus": "Unshipped",
}


class MiniAmazon(SandboxBase):
    """Just enough SP-API to record: getOrders, confirmShipment, and an LWA token endpoint."""

    kind = "mini-amazon"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.broken = False  # answer orders without OrderStatus

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(ORDERS, self._orders)
        app.router.add_post(ORDERS + "/{id}/shipmentConfirmation", self._confirm)
        app.router.add_post("/auth/o2/token", self._token)

    async def _orders(self, request: web.Request) -> web.Response:
        order = {k: v for k, v in ORDER.items() if not (self.broken and k == "OrderStatus")}
        return json_response({"payload": {"Orders": [order]}})

    async def _confirm(self, request: web.Request) -> web.Response:
        await read_json(request)
        return web.Response(status=204)

    async def _token(self, request: web.Request) -> web.Response:
        await request.post()
        return json_response({"access_token": "Atza|x", "token_type": "bearer", "expires_in": 3600})


@pytest.fixture
async def mini() -> AsyncIterator[tuple[MiniAmazon, httpx.AsyncClient]]:
    sandbox = MiniAmazon(record_exchanges=True)
    served: Served = await serve(sandbox.build_app())
    async with httpx.AsyncClient(base_url=served.url, timeout=5) as http:
        yield sandbox, http
    await served.close()


async def recorded(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    exchanges: list[dict[str, Any]] = (await http.get("/_control/exchanges")).json()["exchanges"]
    return exchanges


async def test_a_recorded_cycle_passes_and_a_broken_answer_fails(
    mini: tuple[MiniAmazon, httpx.AsyncClient],
) -> None:
    sandbox, http = mini
    model = amazon_model("ordersV0.json")
    token = {"grant_type": "refresh_token", "refresh_token": "Atzr|r", "client_id": "c"}
    assert (await http.post("/auth/o2/token", data=token)).status_code == 200
    orders = await http.get(ORDERS, params={"MarketplaceIds": "ATVPDKIKX0DER"})
    assert orders.status_code == 200
    shipment = {
        "marketplaceId": "ATVPDKIKX0DER",
        "packageDetail": {
            "packageReferenceId": "1",
            "carrierCode": "UPS",
            "trackingNumber": "1Z999",
            "shipDate": "2024-03-11T15:00:00Z",
            "orderItems": [{"orderItemId": "1", "quantity": 1}],
        },
    }
    path = f"{ORDERS}/902-3159896-1390916/shipmentConfirmation"
    assert (await http.post(path, json=shipment)).status_code == 204
    exchanges = await recorded(http)
    assert len(exchanges) == 3
    for exchange in exchanges:
        model.check_exchange(exchange, ignore_paths=["/auth/o2/*"])

    with pytest.raises(SpecViolation) as unlisted:
        model.check_exchange(exchanges[0])  # the token endpoint, not ignored this time
    assert unlisted.value.errors == [
        "exchange #0 POST /auth/o2/token -> 200: no operation in ordersV0.json"
    ]

    sandbox.broken = True
    await http.get(ORDERS, params={"MarketplaceIds": "ATVPDKIKX0DER", "Status": "x"})
    with pytest.raises(SpecViolation) as broken:
        model.check_exchange((await recorded(http))[-1])
    assert broken.value.errors == [
        "exchange #3 GET /orders/v0/orders -> 200: GET /orders/v0/orders (getOrders): "
        "unknown query parameter 'Status'",
        "exchange #3 GET /orders/v0/orders -> 200: GET /orders/v0/orders (getOrders): "
        "response 200: $.payload.Orders[0]: 'OrderStatus' is a required property",
    ]


async def test_faulted_throttled_and_failed_exchanges_are_skipped(
    mini: tuple[MiniAmazon, httpx.AsyncClient],
) -> None:
    _, http = mini
    faults = {"statuses": [429, 500, 0], "truncate_rate": 0.0}
    assert (await http.put("/_control/faults", json=faults)).status_code == 200
    for _ in range(3):
        await http.get(ORDERS)  # no MarketplaceIds: a violation wherever it is checked
    await http.put("/_control/faults", json={"truncate_rate": 1.0})
    await http.get(ORDERS, params={"MarketplaceIds": "A"})
    exchanges = await recorded(http)
    assert [(e["status"], e["fault"]) for e in exchanges] == [
        (429, "scripted"),
        (500, "scripted"),
        (200, None),
        (200, "truncate"),
    ]
    model = amazon_model("ordersV0.json")
    for skipped in (exchanges[0], exchanges[1], exchanges[3]):
        model.check_exchange(skipped)
    # The same requests unflagged are checked: a real 429 or 5xx from the handler is skipped
    # too, since no model describes them reliably.
    model.check_exchange({**exchanges[0], "fault": None})
    with pytest.raises(SpecViolation):
        model.check_exchange(exchanges[2])
    with pytest.raises(SpecViolation) as truncated:
        model.check_exchange({**exchanges[3], "fault": None})
    assert any("body is not JSON" in error for error in truncated.value.errors)


SWAGGER2 = {
    "swagger": "2.0",
    "basePath": "/api/v2",
    "paths": {
        "/things/{thingId}": {
            "parameters": [{"name": "thingId", "in": "path", "required": True, "type": "integer"}],
            "get": {
                "operationId": "getThing",
                "parameters": [
                    {
                        "name": "ids",
                        "in": "query",
                        "type": "array",
                        "items": {"type": "string"},
                        "collectionFormat": "multi",
                    },
                    {"name": "mode", "in": "query", "type": "string", "enum": ["a", "b"]},
                ],
                "responses": {"200": {"schema": {"$ref": "#/definitions/Thing"}}},
            },
            "post": {
                "operationId": "uploadThing",
                "consumes": ["multipart/form-data"],
                "parameters": [{"name": "file", "in": "formData", "type": "file"}],
                "responses": {"default": {"schema": {"type": "object"}}},
            },
        }
    },
    "definitions": {
        "Thing": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "integer"}, "blob": {"type": "file"}},
        }
    },
}


def test_swagger2_base_path_path_level_parameters_and_multi_arrays() -> None:
    model = OpenApiModel(SWAGGER2, name="things.json")
    assert model.operation_id("GET", "/api/v2/things/7") == "getThing"
    assert model.operation_id("GET", "/things/7") == "getThing"
    model.check_request("GET", "/api/v2/things/7", {"ids": ["x", "y"], "mode": "a"}, None)
    with pytest.raises(SpecViolation) as caught:
        model.check_request("GET", "/api/v2/things/seven", {"mode": "c"}, None)
    assert caught.value.errors == [
        "GET /things/{thingId} (getThing): path parameter 'thingId': $: 'seven' is not of type "
        "'integer'",
        "GET /things/{thingId} (getThing): query parameter 'mode': $: 'c' is not one of ['a', 'b']",
    ]
    model.check_response("GET", "/things/7", 200, {"id": 7, "blob": "anything"})  # type: file
    model.check_response("POST", "/things/7", 418, {"any": "status"})  # default
    model.check_request("POST", "/things/7", {}, None, headers={})


OPENAPI3 = {
    "openapi": "3.0.0",
    "servers": [
        {"url": "https://example.test{basePath}", "variables": {"basePath": {"default": "/svc/v1"}}}
    ],
    "paths": {
        "/items/{sku}": {
            "put": {
                "operationId": "putItem",
                "parameters": [
                    {"$ref": "#/components/parameters/Sku"},
                    {
                        "name": "tags",
                        "in": "query",
                        "explode": False,
                        "schema": {"type": "array", "items": {"type": "integer"}},
                    },
                ],
                "requestBody": {"$ref": "#/components/requestBodies/Item"},
                "responses": {
                    "2XX": {"$ref": "#/components/responses/Item"},
                    "204": {"description": "nothing"},
                },
            }
        }
    },
    "components": {
        "parameters": {
            "Sku": {
                "name": "sku",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "maxLength": 5},
            }
        },
        "requestBodies": {
            "Item": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}},
            }
        },
        "responses": {
            "Item": {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}
            }
        },
        "schemas": {
            "Item": {
                "type": "object",
                "properties": {
                    "note": {"type": "string", "nullable": True},
                    "state": {"type": "string", "enum": ["NEW", "USED"], "nullable": True},
                    "parent": {"$ref": "#/components/schemas/Ref", "nullable": True},
                },
            },
            "Ref": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    },
}


def test_openapi3_servers_refs_nullable_and_status_ranges() -> None:
    model = OpenApiModel(OPENAPI3, name="items.json")
    path = "/svc/v1/items/AB%2FC"
    item = {"note": None, "state": None, "parent": None}
    model.check_request("PUT", path, {"tags": "1,2"}, item)
    model.check_response("PUT", path, 201, {"note": "x", "state": "NEW", "parent": {"id": "1"}})
    model.check_response("PUT", path, 204, None)
    with pytest.raises(SpecViolation) as caught:
        model.check_request("PUT", "/items/TOOLONG", {"tags": "1,x"}, {"state": "OLD"})
    assert [error.split(": ", 1)[1] for error in caught.value.errors] == [
        "path parameter 'sku': $: 'TOOLONG' is too long",
        "query parameter 'tags': $[1]: 'x' is not of type 'integer'",
        "request body: $.state: 'OLD' is not one of ['NEW', 'USED', None]",
    ]
    with pytest.raises(SpecViolation):
        model.check_request("PUT", path, {}, None)  # the $ref'd request body is required
    with pytest.raises(SpecViolation):
        model.check_response("PUT", path, 404, None)
