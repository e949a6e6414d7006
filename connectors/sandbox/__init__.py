"""Shared machinery for fake channels: clock, faults, rate-limit models, webhooks, the base app."""

from __future__ import annotations

from connectors.sandbox.app import (
    SANDBOX_KEY,
    JsonError,
    RequestRecord,
    SandboxBase,
    Served,
    json_response,
    read_json,
    serve,
)
from connectors.sandbox.clock import ManualClock, SandboxClock, format_timestamp
from connectors.sandbox.faults import Faults, faults_middleware, is_api_request
from connectors.sandbox.ratelimit import CostBucketRule, Decision, RateRule, TokenBucketRule
from connectors.sandbox.registry import SANDBOX_CHANNELS, SANDBOXES, ChannelKeys
from connectors.sandbox.webhooks import WebhookAttempt, WebhookSender

__all__ = [
    "SANDBOXES",
    "SANDBOX_CHANNELS",
    "ChannelKeys",
    "SANDBOX_KEY",
    "CostBucketRule",
    "Decision",
    "Faults",
    "JsonError",
    "ManualClock",
    "RateRule",
    "RequestRecord",
    "SandboxBase",
    "SandboxClock",
    "Served",
    "TokenBucketRule",
    "WebhookAttempt",
    "WebhookSender",
    "faults_middleware",
    "format_timestamp",
    "is_api_request",
    "json_response",
    "read_json",
    "serve",
]
