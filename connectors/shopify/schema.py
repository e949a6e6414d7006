"""The subset of Shopify's GraphQL Admin schema the sandbox validates and executes queries against.

Written by hand from the reference pages on shopify.dev (objects Order, LineItem, Refund,
RefundLineItem, Fulfillment, FulfillmentOrder, ProductVariant, InventoryItem, InventoryLevel,
Location; mutations inventorySetQuantities and fulfillmentCreate), for API version 2026-04 and
later: https://shopify.dev/docs/api/admin-graphql. Only the fields storesync reads, plus a few
neighbours so that a query asking for a field Shopify has but storesync never uses still works.
A field that is not here fails validation the way Shopify answers an unknown field.

Version-dependent rules are not expressible in SDL and live in the sandbox's resolvers:
`changeFromQuantity` must be present (null allowed) from 2026-04, and `@idempotent` is required
on inventory mutations from 2026-04 (https://shopify.dev/changelog/
finalizing-compare-and-swap-redesign-for-inventory-set-quantities,
https://shopify.dev/changelog/making-idempotency-mandatory-for-inventory-adjustments-and-refund-mutations).
"""

from __future__ import annotations

from functools import cache

from graphql import GraphQLSchema, build_schema

SDL = """
schema {
  query: QueryRoot
  mutation: Mutation
}

"Replays the first result for a repeated key with the same arguments."
directive @idempotent(key: String!) on FIELD

scalar DateTime
scalar Decimal
scalar URL

interface Node {
  id: ID!
}

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

enum CurrencyCode {
  AUD
  CAD
  CHF
  DKK
  EUR
  GBP
  JPY
  NOK
  NZD
  SEK
  USD
}

type MoneyV2 {
  amount: Decimal!
  currencyCode: CurrencyCode!
}

type MoneyBag {
  shopMoney: MoneyV2!
  presentmentMoney: MoneyV2!
}

enum OrderSortKeys {
  CREATED_AT
  CUSTOMER_NAME
  FINANCIAL_STATUS
  FULFILLMENT_STATUS
  ID
  ORDER_NUMBER
  PROCESSED_AT
  RELEVANCE
  TOTAL_PRICE
  UPDATED_AT
}

enum OrderDisplayFinancialStatus {
  AUTHORIZED
  EXPIRED
  PAID
  PARTIALLY_PAID
  PARTIALLY_REFUNDED
  PENDING
  REFUNDED
  VOIDED
}

enum OrderDisplayFulfillmentStatus {
  FULFILLED
  IN_PROGRESS
  ON_HOLD
  OPEN
  PARTIALLY_FULFILLED
  PENDING_FULFILLMENT
  REQUEST_DECLINED
  RESTOCKED
  SCHEDULED
  UNFULFILLED
}

enum OrderCancelReason {
  CUSTOMER
  DECLINED
  FRAUD
  INVENTORY
  OTHER
  STAFF
}

enum RefundLineItemRestockType {
  CANCEL
  LEGACY_RESTOCK
  NO_RESTOCK
  RETURN
}

enum FulfillmentStatus {
  CANCELLED
  ERROR
  FAILURE
  OPEN
  PENDING
  SUCCESS
}

enum FulfillmentOrderStatus {
  CANCELLED
  CLOSED
  INCOMPLETE
  IN_PROGRESS
  ON_HOLD
  OPEN
  SCHEDULED
}

enum FulfillmentOrderAction {
  CANCEL_FULFILLMENT_ORDER
  CREATE_FULFILLMENT
  EXTERNAL
  HOLD
  MARK_AS_OPEN
  MERGE
  MOVE
  RELEASE_HOLD
  REQUEST_CANCELLATION
  REQUEST_FULFILLMENT
  SPLIT
}

enum FulfillmentServiceType {
  GIFT_CARD
  MANUAL
  THIRD_PARTY
}

enum InventorySetQuantitiesUserErrorCode {
  CHANGE_FROM_QUANTITY_STALE
  INVALID_INVENTORY_ITEM
  INVALID_LOCATION
  INVALID_NAME
  INVALID_QUANTITY_NEGATIVE
  INVALID_QUANTITY_TOO_HIGH
  INVALID_REASON
  INVALID_REFERENCE_DOCUMENT
  ITEM_NOT_STOCKED_AT_LOCATION
  NON_MUTABLE_INVENTORY_ITEM
}

type Order implements Node {
  id: ID!
  name: String!
  email: String
  createdAt: DateTime!
  updatedAt: DateTime!
  cancelledAt: DateTime
  cancelReason: OrderCancelReason
  closed: Boolean!
  closedAt: DateTime
  displayFinancialStatus: OrderDisplayFinancialStatus
  displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  currencyCode: CurrencyCode!
  totalPriceSet: MoneyBag!
  lineItems(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean
  ): LineItemConnection!
  refunds(first: Int): [Refund!]!
  fulfillments(first: Int): [Fulfillment!]!
  fulfillmentOrders(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean
    displayable: Boolean
    query: String
  ): FulfillmentOrderConnection!
}

type OrderConnection {
  edges: [OrderEdge!]!
  nodes: [Order!]!
  pageInfo: PageInfo!
}

type OrderEdge {
  cursor: String!
  node: Order!
}

type LineItem implements Node {
  id: ID!
  sku: String
  name: String!
  title: String!
  quantity: Int!
  currentQuantity: Int!
  unfulfilledQuantity: Int!
  refundableQuantity: Int!
  nonFulfillableQuantity: Int!
  variant: ProductVariant
}

type LineItemConnection {
  edges: [LineItemEdge!]!
  nodes: [LineItem!]!
  pageInfo: PageInfo!
}

type LineItemEdge {
  cursor: String!
  node: LineItem!
}

type Refund implements Node {
  id: ID!
  createdAt: DateTime
  note: String
  order: Order!
  refundLineItems(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean
  ): RefundLineItemConnection!
}

type RefundLineItem {
  id: ID
  lineItem: LineItem!
  quantity: Int!
  restockType: RefundLineItemRestockType!
  restocked: Boolean!
  location: Location
}

type RefundLineItemConnection {
  edges: [RefundLineItemEdge!]!
  nodes: [RefundLineItem!]!
  pageInfo: PageInfo!
}

type RefundLineItemEdge {
  cursor: String!
  node: RefundLineItem!
}

type Fulfillment implements Node {
  id: ID!
  name: String!
  status: FulfillmentStatus!
  createdAt: DateTime!
  location: Location
  order: Order!
  trackingInfo(first: Int): [FulfillmentTrackingInfo!]!
  fulfillmentLineItems(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean
  ): FulfillmentLineItemConnection!
}

type FulfillmentTrackingInfo {
  company: String
  number: String
  url: URL
}

type FulfillmentLineItem {
  id: ID!
  lineItem: LineItem!
  quantity: Int
}

type FulfillmentLineItemConnection {
  edges: [FulfillmentLineItemEdge!]!
  nodes: [FulfillmentLineItem!]!
  pageInfo: PageInfo!
}

type FulfillmentLineItemEdge {
  cursor: String!
  node: FulfillmentLineItem!
}

type FulfillmentOrder implements Node {
  id: ID!
  orderId: ID!
  order: Order!
  status: FulfillmentOrderStatus!
  assignedLocation: FulfillmentOrderAssignedLocation!
  supportedActions: [FulfillmentOrderSupportedAction!]!
  lineItems(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean
  ): FulfillmentOrderLineItemConnection!
}

type FulfillmentOrderConnection {
  edges: [FulfillmentOrderEdge!]!
  nodes: [FulfillmentOrder!]!
  pageInfo: PageInfo!
}

type FulfillmentOrderEdge {
  cursor: String!
  node: FulfillmentOrder!
}

type FulfillmentOrderAssignedLocation {
  name: String
  location: Location
}

type FulfillmentOrderSupportedAction {
  action: FulfillmentOrderAction!
  externalUrl: URL
}

type FulfillmentOrderLineItem {
  id: ID!
  sku: String
  totalQuantity: Int!
  remainingQuantity: Int!
  lineItem: LineItem!
}

type FulfillmentOrderLineItemConnection {
  edges: [FulfillmentOrderLineItemEdge!]!
  nodes: [FulfillmentOrderLineItem!]!
  pageInfo: PageInfo!
}

type FulfillmentOrderLineItemEdge {
  cursor: String!
  node: FulfillmentOrderLineItem!
}

type FulfillmentService {
  id: ID!
  handle: String!
  serviceName: String!
  type: FulfillmentServiceType!
}

type Location implements Node {
  id: ID!
  name: String!
  isActive: Boolean!
  isPrimary: Boolean!
  fulfillmentService: FulfillmentService
  inventoryLevel(inventoryItemId: ID!): InventoryLevel
}

type LocationConnection {
  edges: [LocationEdge!]!
  nodes: [Location!]!
  pageInfo: PageInfo!
}

type LocationEdge {
  cursor: String!
  node: Location!
}

type Product implements Node {
  id: ID!
  title: String!
}

type ProductVariant implements Node {
  id: ID!
  sku: String
  title: String!
  displayName: String!
  price: Decimal!
  product: Product!
  inventoryItem: InventoryItem!
}

type ProductVariantConnection {
  edges: [ProductVariantEdge!]!
  nodes: [ProductVariant!]!
  pageInfo: PageInfo!
}

type ProductVariantEdge {
  cursor: String!
  node: ProductVariant!
}

type InventoryItem implements Node {
  id: ID!
  sku: String
  tracked: Boolean!
  variant: ProductVariant!
  inventoryLevel(locationId: ID!): InventoryLevel
}

type InventoryLevel implements Node {
  id: ID!
  item: InventoryItem!
  location: Location!
  quantities(names: [String!]!): [InventoryQuantity!]!
  updatedAt: DateTime!
}

type InventoryQuantity {
  id: ID!
  name: String!
  quantity: Int!
  updatedAt: DateTime
}

type InventoryAdjustmentGroup implements Node {
  id: ID!
  createdAt: DateTime!
  reason: String!
  referenceDocumentUri: String
  changes(
    inventoryItemIds: [ID!]
    locationIds: [ID!]
    quantityNames: [String!]
  ): [InventoryChange!]!
}

type InventoryChange {
  name: String!
  delta: Int!
  quantityAfterChange: Int
  item: InventoryItem
  location: Location
}

type QueryRoot {
  orders(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean
    sortKey: OrderSortKeys
    query: String
  ): OrderConnection!
  order(id: ID!): Order
  refund(id: ID!): Refund
  fulfillmentOrder(id: ID!): FulfillmentOrder
  productVariants(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean
    query: String
  ): ProductVariantConnection!
  productVariant(id: ID!): ProductVariant
  inventoryItem(id: ID!): InventoryItem
  locations(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean
    includeInactive: Boolean
    query: String
  ): LocationConnection!
  location(id: ID): Location
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
}

input InventoryQuantityInput {
  inventoryItemId: ID!
  locationId: ID!
  quantity: Int!
  changeFromQuantity: Int
}

input InventorySetQuantitiesInput {
  name: String!
  reason: String!
  referenceDocumentUri: String
  quantities: [InventoryQuantityInput!]!
}

type InventorySetQuantitiesUserError {
  code: InventorySetQuantitiesUserErrorCode
  field: [String!]
  message: String!
}

type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup
  userErrors: [InventorySetQuantitiesUserError!]!
}

input FulfillmentOrderLineItemInput {
  id: ID!
  quantity: Int!
}

input FulfillmentOrderLineItemsInput {
  fulfillmentOrderId: ID!
  fulfillmentOrderLineItems: [FulfillmentOrderLineItemInput!]
}

input FulfillmentTrackingInput {
  company: String
  number: String
  numbers: [String!]
  url: URL
  urls: [URL!]
}

input FulfillmentOriginAddressInput {
  address1: String
  address2: String
  city: String
  countryCode: String!
  provinceCode: String
  zip: String
}

input FulfillmentInput {
  lineItemsByFulfillmentOrder: [FulfillmentOrderLineItemsInput!]!
  trackingInfo: FulfillmentTrackingInput
  notifyCustomer: Boolean
  originAddress: FulfillmentOriginAddressInput
}

type UserError {
  field: [String!]
  message: String!
}

type FulfillmentCreatePayload {
  fulfillment: Fulfillment
  userErrors: [UserError!]!
}

type Mutation {
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
  fulfillmentCreate(fulfillment: FulfillmentInput!, message: String): FulfillmentCreatePayload
}
"""


@cache
def admin_schema() -> GraphQLSchema:
    """The schema subset, built once per process (building it takes a few milliseconds)."""
    return build_schema(SDL)
