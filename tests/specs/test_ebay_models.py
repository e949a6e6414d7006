"""The validator against eBay's OpenAPI 3 specs (skipped where the specs are not on the machine).

eBay's schemas list no required properties and allow extra ones, so wrong types and undeclared
parameters are what the plain model catches; strict mode catches misspelt fields.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.specs import SpecViolation, ebay_model, locate

FULFILLMENT = "sell_fulfillment_v1_oas3.json"
INVENTORY = "sell_inventory_v1_oas3.json"

ORDER: dict[str, Any] = {
    "orderId": "05-10455-72394",
    "legacyOrderId": "110123456789-2718281828001",
    "creationDate": "2024-03-11T13:16:24.000Z",
    "lastModifiedDate": "2024-03-11T13:20:00.000Z",
    "orderFulfillmentStatus": "NOT_STARTED",
    "orderPaymentStatus": "PAID",
    "sellerId": "seller_1",
    "buyer": {"username": "buyer_1"},
    "pricingSummary": {"total": {"value": "19.99", "currency": "USD"}},
    "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
    "lineItems": [
        {
            "lineItemId": "10045678901234",
            "legacyItemId": "110123456789",
            "sku": "SKU-1",
            "title": "A thing",
            "quantity": 2,
            "lineItemFulfillmentStatus": "NOT_STARTED",
            "lineItemCost": {"value": "19.99", "currency": "USD"},
        }
    ],
}
BULK: dict[str, Any] = {
    "requests": [
        {"sku": "SKU-1", "shipToLocationAvailability": {"quantity": 3}},
        {
            "sku": "SKU-2",
            "shipToLocationAvailability": {"quantity": 0},
            "offers": [{"offerId": "7001", "availableQuantity": 0}],
        },
    ]
}


def violations(call: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(SpecViolation) as caught:
        call(*args, **kwargs)
    return caught.value.errors


def test_missing_specs_skip_with_a_clear_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv(locate.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(locate, "SHARED", tmp_path / "nowhere")
    with pytest.raises(pytest.skip.Exception) as skipped:
        locate.ebay_spec_path(FULFILLMENT)
    assert (
        f"eBay OpenAPI specs not found: set STORESYNC_SPECS to a folder holding ebay/{FULFILLMENT}"
        in (str(skipped.value))
    )


def test_operations_match_with_or_without_the_base_path() -> None:
    fulfillment = ebay_model(FULFILLMENT)
    assert fulfillment.operation_id("GET", "/sell/fulfillment/v1/order") == "getOrders"
    assert fulfillment.operation_id("GET", "/order") == "getOrders"
    assert (
        fulfillment.operation_id("GET", "/sell/fulfillment/v1/order/05-10455-72394") == "getOrder"
    )
    assert (
        fulfillment.operation_id("POST", "/sell/fulfillment/v1/order/05-1/shipping_fulfillment")
        == "createShippingFulfillment"
    )
    assert fulfillment.operation_id("GET", "/sell/inventory/v1/order") is None
    inventory = ebay_model(INVENTORY)
    # A literal segment beats a parameter: /offer/get_listing_fees is not /offer/{offerId}.
    assert inventory.operation_id("POST", "/sell/inventory/v1/offer/get_listing_fees") == (
        "getListingFees"
    )
    assert inventory.operation_id("GET", "/sell/inventory/v1/offer/get_listing_fees") == "getOffer"
    # The spec writes this one with a trailing slash; clients may send it either way.
    assert inventory.operation_id("POST", "/sell/inventory/v1/offer/7001/publish") == "publishOffer"
    assert (
        inventory.operation_id("POST", "/sell/inventory/v1/offer/7001/publish/") == "publishOffer"
    )


def test_get_orders_requests() -> None:
    model = ebay_model(FULFILLMENT)
    model.check_request(
        "GET",
        "/sell/fulfillment/v1/order",
        {"filter": "lastmodifieddate:[2024-03-01T00:00:00.000Z..]", "limit": "200", "offset": "0"},
        None,
    )
    errors = violations(
        model.check_request,
        "GET",
        "/sell/fulfillment/v1/order",
        {"since": "x", "limit": ["1", "2"]},
    )
    assert errors == [
        "GET /order (getOrders): unknown query parameter 'since'",
        "GET /order (getOrders): query parameter 'limit': "
        "given 2 times, declared as a single value",
    ]


def test_order_schema() -> None:
    model = ebay_model(FULFILLMENT)
    model.check_schema("Order", ORDER)
    wrong = copy.deepcopy(ORDER)
    wrong["lineItems"][0]["quantity"] = "2"
    wrong["pricingSummary"]["total"] = "19.99"
    errors = violations(model.check_schema, "Order", wrong)
    assert [e.split(": ", 2)[1] for e in errors] == [
        "$.lineItems[0].quantity",
        "$.pricingSummary.total",
    ]
    page = {"href": "h", "limit": 50, "offset": 0, "total": 1, "orders": [ORDER]}
    model.check_response("GET", "/sell/fulfillment/v1/order", 200, page)
    assert violations(
        model.check_response, "GET", "/sell/fulfillment/v1/order", 200, {**page, "total": "1"}
    )


def test_shipping_fulfillment_request_and_answer() -> None:
    model = ebay_model(FULFILLMENT)
    path = "/sell/fulfillment/v1/order/05-10455-72394/shipping_fulfillment"
    body = {
        "lineItems": [{"lineItemId": "10045678901234", "quantity": 2}],
        "shippedDate": "2024-03-11T15:00:00.000Z",
        "shippingCarrierCode": "USPS",
        "trackingNumber": "9400100000000000000000",
    }
    model.check_request("POST", path, {}, body)
    assert violations(model.check_request, "POST", path, {}, None) == [
        "POST /order/{orderId}/shipping_fulfillment (createShippingFulfillment): "
        "request body: required but missing"
    ]
    # eBay's spec declares dates as plain strings (no format), so a type error is what shows.
    wrong = {**body, "lineItems": [{"lineItemId": "10045678901234", "quantity": "2"}]}
    assert violations(model.check_request, "POST", path, {}, wrong) == [
        "POST /order/{orderId}/shipping_fulfillment (createShippingFulfillment): request body: "
        "$.lineItems[0].quantity: '2' is not of type 'integer'"
    ]
    # 201 declares a bare `{"type": "object"}`; eBay answers it with no body and a Location.
    model.check_response("POST", path, 201, None)
    model.check_response("POST", path, 201, {})
    assert violations(model.check_response, "POST", path, 201, [])
    assert violations(model.check_response, "POST", path, 202, None)


def test_bulk_update_price_quantity() -> None:
    model = ebay_model(INVENTORY)
    path = "/sell/inventory/v1/bulk_update_price_quantity"
    model.check_schema("BulkPriceQuantity", BULK)
    model.check_request("POST", path, {}, BULK)
    wrong = copy.deepcopy(BULK)
    wrong["requests"][0]["shipToLocationAvailability"]["quantity"] = "3"
    wrong["requests"][1]["offers"] = {"offerId": "7001"}
    errors = violations(model.check_request, "POST", path, {}, wrong)
    assert len(errors) == 2 and all(
        "(bulkUpdatePriceQuantity): request body: $.requests[" in e for e in errors
    ), errors
    answer = {"responses": [{"sku": "SKU-1", "statusCode": 200, "offerId": "7001"}]}
    model.check_response("POST", path, 200, answer)
    model.check_response("POST", path, 207, None)
    assert violations(model.check_response, "POST", path, 200, {"responses": {"sku": "SKU-1"}})


def test_strict_mode_catches_misspelt_fields() -> None:
    misspelt = {"requests": [{"sku": "SKU-1", "shipToLocationAvailibility": {"quantity": 3}}]}
    ebay_model(INVENTORY).check_schema("BulkPriceQuantity", misspelt)
    errors = violations(
        ebay_model(INVENTORY, strict=True).check_schema, "BulkPriceQuantity", misspelt
    )
    assert errors == [
        "BulkPriceQuantity: $.requests[0]: Additional properties are not allowed "
        "('shipToLocationAvailibility' was unexpected)"
    ]
    ebay_model(INVENTORY, strict=True).check_schema("BulkPriceQuantity", BULK)
    ebay_model(FULFILLMENT, strict=True).check_schema("Order", ORDER)


def test_required_headers_are_checked_when_given() -> None:
    model = ebay_model(INVENTORY)
    path = "/sell/inventory/v1/inventory_item/SKU%2F1"
    item = {"availability": {"shipToLocationAvailability": {"quantity": 3}}, "condition": "NEW"}
    model.check_request("PUT", path, {}, item)  # no headers given: not checked
    model.check_request("PUT", path, {}, item, headers={"Content-Language": "en-US"})
    assert violations(model.check_request, "PUT", path, {}, item, headers={"accept": "*/*"}) == [
        "PUT /inventory_item/{sku} (createOrReplaceInventoryItem): header parameter "
        "'Content-Language': required but missing"
    ]
