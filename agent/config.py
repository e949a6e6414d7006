"""Load storesync's TOML config into validated pydantic models.

One file configures one merchant. `load_config` reads it with `tomllib`, validates it against the
models below, resolves every secret (`{ env = ... }`, `{ file = ... }`, `{ credential = ... }`) and
checks cross references (locations, channels, bundle components). Whatever is wrong, the caller
gets one `ConfigError` listing *all* problems, each naming the file and a dotted key path, so a
merchant fixes the file in one pass instead of one error per restart.

Secret values live only inside `Secret` objects and never reach a repr, an error, a warning, a
summary or a serialized dump.
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from agent.engine.stock_math import MAX_UNITS

__all__ = [
    "AgentConfig",
    "AlertsConfig",
    "AmazonChannel",
    "BaseChannel",
    "BundleConfig",
    "ChannelConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Duration",
    "EbayChannel",
    "ListenAddress",
    "LocationConfig",
    "ReferenceChannel",
    "Secret",
    "ShopifyChannel",
    "SkuChannelOverride",
    "SkuOverride",
    "StockConfig",
    "SyncConfig",
    "WooCommerceChannel",
    "default_config_path",
    "format_duration",
    "format_summary",
    "load_config",
    "parse_duration",
]

DEFAULT_CONFIG_PATH = Path("/etc/storesync/storesync.toml")
CONFIG_PATH_ENV = "STORESYNC_CONFIG"
# systemd sets this for units with LoadCredential=/SetCredential= (systemd.exec(5), "Credentials").
CREDENTIALS_DIR_ENV = "CREDENTIALS_DIRECTORY"
IMPLICIT_LOCATION = "main"

# Keys of the pydantic validation context that load_config passes down to validators.
_CTX_ENVIRON = "environ"
_CTX_BASE_DIR = "base_dir"
_CTX_REFERENCES_CHECKED = "references_checked"


# --------------------------------------------------------------------------------------------
# Issues and errors


@dataclass(frozen=True)
class ConfigIssue:
    """One problem (or warning) in a config file, located by a dotted key path."""

    file: str
    key_path: str
    message: str

    def __str__(self) -> str:
        """Render as `file: key.path: message`, the way editors and humans read locations."""
        return f"{self.file}: {self.key_path}: {self.message}"


class ConfigError(Exception):
    """The config could not be loaded; `issues` lists every problem found, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


# A key path as segments: str for table keys, int for array indexes.
_Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class _Problem:
    """An issue before it is bound to a file: segments are kept so issues can be sorted."""

    loc: _Loc
    message: str


def _render_loc(loc: _Loc) -> str:
    """Turn segments into `channels.shop.locations[1]`, quoting keys TOML could not write bare."""
    parts: list[str] = []
    for segment in loc:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
            continue
        key = segment if _BARE_KEY.fullmatch(segment) else json.dumps(segment)
        parts.append(f".{key}" if parts else key)
    return "".join(parts)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _did_you_mean(word: str, candidates: typing.Iterable[str]) -> str:
    """A ` (did you mean 'x'?)` hint, or "" when nothing is close enough to be a likely typo."""
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _rule_error(key: str, message: str) -> PydanticCustomError:
    """An error raised by a model-level rule but reported at one of that model's keys."""
    # Model validators report at the model's own location; `key` lets the translator point the
    # merchant at the key they need to change instead.
    return PydanticCustomError("config_rule", "{message}", {"message": message, "key": key})


def _custom_error(message: str) -> PydanticCustomError:
    """A validation error whose text is shown to the merchant as is."""
    # The message goes in the context, not the template, so braces in it are never formatted.
    return PydanticCustomError("config_value", "{message}", {"message": message})


# --------------------------------------------------------------------------------------------
# Secrets


class Secret:
    """A credential from the config; only `reveal()` gives the value, nothing else prints it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "literal") -> None:
        self._value = value
        self.source = source  # where it came from, e.g. "env:SHOPIFY_TOKEN"; safe to show

    def reveal(self) -> str:
        """Return the secret value; call this only where it is sent to the channel."""
        return self._value

    def __repr__(self) -> str:
        """Never the value."""
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        """Equal when value and source match (lets a reload tell whether credentials changed)."""
        if not isinstance(other, Secret):
            return NotImplemented
        same_value = hmac.compare_digest(self._value.encode(), other._value.encode())
        return same_value and self.source == other.source

    def __hash__(self) -> int:
        """Hash by source only, so a hash never depends on the value."""
        return hash(self.source)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate by resolving the reference; serialize as "***" in every mode."""
        return core_schema.with_info_plain_validator_function(
            _validate_secret,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _mask_secret, return_schema=core_schema.str_schema()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Describe the accepted TOML forms for schema-driven tools."""
        reference = {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {name: {"type": "string"} for name in ("env", "file", "credential")},
        }
        return {"anyOf": [{"type": "string"}, reference]}


def _mask_secret(value: Secret) -> str:
    """What a Secret serializes to."""
    return "***"


_SECRET_FORMS = (
    'a string, or a table { env = "NAME" }, { file = "path" } or { credential = "name" }'
)


def _validate_secret(value: Any, info: ValidationInfo) -> Secret:
    """Resolve a TOML secret reference into a Secret; errors never include the value."""
    if isinstance(value, Secret):
        return value
    context = info.context or {}
    environ: Mapping[str, str] = context.get(_CTX_ENVIRON, os.environ)
    base_dir: Path = context.get(_CTX_BASE_DIR, Path.cwd())
    if isinstance(value, str):
        if not value:
            raise _custom_error("secret is empty")
        return Secret(value, "literal")
    if not isinstance(value, dict):
        raise _custom_error(f"expected a secret: {_SECRET_FORMS}")
    if len(value) != 1 or next(iter(value)) not in ("env", "file", "credential"):
        keys = ", ".join(sorted(value)) or "none"
        raise _custom_error(
            f"a secret table needs exactly one of env, file or credential (got keys: {keys})"
        )
    ((form, reference),) = value.items()
    if not isinstance(reference, str) or not reference:
        raise _custom_error(f"{form} must be a non-empty string")
    if form == "env":
        return _read_env_secret(reference, environ)
    if form == "file":
        path = Path(reference).expanduser()
        if not path.is_absolute():
            # Relative to the config file, so a config directory can be moved as one unit.
            path = base_dir / path
        return Secret(_read_secret_file(path, "secret file"), f"file:{path}")
    return _read_credential(reference, environ)


def _read_env_secret(name: str, environ: Mapping[str, str]) -> Secret:
    """Read a secret from an environment variable."""
    if name not in environ:
        raise _custom_error(f"environment variable {name} is not set")
    if not environ[name]:
        raise _custom_error(f"environment variable {name} is empty")
    return Secret(environ[name], f"env:{name}")


def _read_credential(name: str, environ: Mapping[str, str]) -> Secret:
    """Read a systemd credential: the file `name` in $CREDENTIALS_DIRECTORY."""
    if "/" in name or name in (".", ".."):
        raise _custom_error(f"credential name '{name}' must be a plain file name")
    directory = environ.get(CREDENTIALS_DIR_ENV)
    if not directory:
        raise _custom_error(
            f'{{ credential = "{name}" }} needs ${CREDENTIALS_DIR_ENV}, which systemd sets for'
            f" units with LoadCredential=; it is not set"
        )
    path = Path(directory) / name
    return Secret(_read_secret_file(path, "credential file"), f"credential:{name}")


def _read_secret_file(path: Path, what: str) -> str:
    """Read a secret file, dropping the one trailing newline editors and `echo` add."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _custom_error(f"cannot read {what} {path}: {reason}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _custom_error(f"{what} {path} is not valid UTF-8") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise _custom_error(f"{what} {path} is empty")
    return text


# --------------------------------------------------------------------------------------------
# Durations


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_TEXT = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNIT_SECONDS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = list(_UNIT_SECONDS)
# Longer is a typo, and a timer that long overflows date arithmetic when it is scheduled.
_MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """Parse "500ms", "90s", "5m", "1h", "1d" or combinations such as "1h30m" into a timedelta."""
    hint = f'invalid duration \'{text}\': use a number with a unit, e.g. "90s", "5m", "1h"'
    if not _DURATION_TEXT.fullmatch(text):
        raise ValueError(hint)
    total = timedelta()
    last_rank = -1
    for match in _DURATION_PART.finditer(text):
        number, unit = match.groups()
        rank = _UNIT_ORDER.index(unit)
        # "30m1h" or "5m5m" are almost certainly typos; insist on largest unit first, once each.
        if rank <= last_rank:
            raise ValueError(f"{hint} (units largest first, each at most once)")
        last_rank = rank
        total += timedelta(seconds=float(number) * _UNIT_SECONDS[unit])
    return total


def format_duration(value: timedelta) -> str:
    """Format a timedelta the way the config writes it: "1h30m", "90s" becomes "1m30s", "500ms"."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    sign = "-" if milliseconds < 0 else ""
    remaining = abs(milliseconds)
    parts: list[str] = []
    for unit, seconds in _UNIT_SECONDS.items():
        unit_ms = round(seconds * 1000)
        count, remaining = divmod(remaining, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def _validate_duration(value: Any) -> timedelta:
    """Accept a duration string, or a bare number meaning seconds."""
    if isinstance(value, timedelta):
        return value
    # bool is an int subclass; `poll_interval = true` is a mistake, not one second.
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise _custom_error(f"duration must not be negative, got {value}")
        if value > _MAX_DURATION.total_seconds():
            raise _custom_error(f"duration must be at most {format_duration(_MAX_DURATION)}, "
                                f"got {value} seconds")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise _custom_error(
            f'expected a duration such as "90s", "5m" or "1h", got {_describe_input(value)}'
        )
    try:
        parsed = parse_duration(value)
    except OverflowError:
        parsed = _MAX_DURATION * 2  # past what timedelta holds: certainly too long
    except ValueError as exc:
        raise _custom_error(str(exc)) from None
    if parsed > _MAX_DURATION:
        raise _custom_error(f"duration must be at most {format_duration(_MAX_DURATION)}, "
                            f"got '{value}'")
    return parsed


Duration = Annotated[
    timedelta,
    PlainValidator(_validate_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A timedelta written as "500ms", "90s", "5m", "1h", "1d", "1h30m", or a number of seconds."""


# --------------------------------------------------------------------------------------------
# Listen addresses


@dataclass(frozen=True)
class ListenAddress:
    """A host and TCP port to listen on, written "host:port" (IPv6 as "[::1]:8080")."""

    host: str
    port: int

    def __str__(self) -> str:
        """The "host:port" form, with brackets around an IPv6 host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """Parse "host:port" or "[ipv6]:port"; raise ValueError with a hint otherwise."""
        hint = f'invalid listen address \'{text}\': use "host:port", e.g. "127.0.0.1:8080"'
        if text.startswith("["):
            host, bracket, port_text = text[1:].partition("]:")
            if not bracket:
                raise ValueError(hint)
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{hint}: '{host}' is not an IPv6 address") from None
        else:
            host, colon, port_text = text.rpartition(":")
            if not colon or not host:
                raise ValueError(hint)
            if ":" in host:
                raise ValueError(f'{hint}; write IPv6 addresses in brackets, e.g. "[::1]:8080"')
            if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
                raise ValueError(f"{hint}: '{host}' is not a host name or IP address")
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"{hint}: the port must be a number from 0 to 65535")
        return cls(host, int(port_text))

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can connect: localhost, 127.0.0.0/8 or ::1."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # any other host name may resolve to a public interface


def _validate_listen_address(value: Any) -> ListenAddress:
    """Accept a ListenAddress or its "host:port" string."""
    if isinstance(value, ListenAddress):
        return value
    if not isinstance(value, str):
        raise _custom_error(f'expected "host:port", got {_describe_input(value)}')
    try:
        return ListenAddress.parse(value)
    except ValueError as exc:
        raise _custom_error(str(exc)) from None


ListenAddressField = Annotated[
    ListenAddress,
    PlainValidator(_validate_listen_address),
    PlainSerializer(str, return_type=str, when_used="json"),
]


# --------------------------------------------------------------------------------------------
# Small value types


def _check_web_url(value: str) -> str:
    """Require an http(s) URL without credentials; drop trailing slashes so paths join cleanly."""
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        has_credentials = bool(parts.username or parts.password)
    except ValueError:
        valid, has_credentials = False, False
    if has_credentials:
        # Never echo it: the userinfo part is a password.
        raise _custom_error("the URL contains credentials; put them in this channel's secret keys")
    if not valid:
        raise _custom_error(
            f"invalid URL '{value}': use an http:// or https:// URL, e.g. \"https://shop.example\""
        )
    return value.rstrip("/")


WebURL = Annotated[str, AfterValidator(_check_web_url)]

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
_CHANNEL_NAME_PATTERN = re.compile(r"[a-z0-9_-]+")


def _check_location_name(value: str) -> str:
    """Location names appear in URLs, metrics and the database; keep them plain."""
    if not _NAME_PATTERN.fullmatch(value):
        raise _custom_error(
            f"invalid location name '{value}': use letters, digits, '_', '.' and '-'"
        )
    return value


def _check_channel_name(value: str) -> str:
    """Channel names are part of the webhook URL (/webhooks/{channel}) and metric labels."""
    if not _CHANNEL_NAME_PATTERN.fullmatch(value):
        raise _custom_error(
            f"invalid channel name '{value}': use lowercase letters, digits, '_' and '-'"
        )
    return value


def _check_not_empty(value: str) -> str:
    """Reject "" where a name or identifier is needed."""
    if not value.strip():
        raise _custom_error("must not be empty")
    return value


LocationName = Annotated[str, AfterValidator(_check_location_name)]
ChannelName = Annotated[str, AfterValidator(_check_channel_name)]
NonEmptyStr = Annotated[str, AfterValidator(_check_not_empty)]
Sku = Annotated[str, AfterValidator(_check_not_empty)]
# A stock figure (buffer, cap, reorder point, units per bundle): past a billion is a typo, and past
# 2**63 SQLite could not store what it makes.
Units = Annotated[int, Field(ge=0, le=MAX_UNITS)]
Percent = Annotated[int, Field(ge=0, le=100)]
PositiveInt = Annotated[int, Field(ge=1)]


# --------------------------------------------------------------------------------------------
# Models


def _resolve_path(value: Any, info: ValidationInfo, what: str) -> Path:
    """A path from TOML; a relative one is resolved against the config file's directory."""
    if isinstance(value, str):
        if not value:
            raise _custom_error("must not be empty")
        value = Path(value).expanduser()
    if not isinstance(value, Path):
        raise _custom_error(f"expected {what}, got {_describe_input(value)}")
    base_dir = (info.context or {}).get(_CTX_BASE_DIR)
    if base_dir is not None and not value.is_absolute():
        # A relative path means "next to the config file", not "wherever the daemon was
        # started", which under systemd is "/".
        value = base_dir / value
    return value


class _Model(BaseModel):
    """Shared settings: unknown keys are errors, TOML types are taken as written, no mutation."""

    # strict: TOML is typed, so `buffer = "10"` is a mistake worth reporting rather than coercing.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AgentConfig(_Model):
    """[agent]: where the daemon keeps its database and listens, and how it logs."""

    database: Path = Path("/var/lib/storesync/storesync.db")
    webhook_listen: ListenAddressField = ListenAddress("127.0.0.1", 8080)
    # Declared before ops_listen so ops_listen's validator can read it: the remote-ops rule then
    # reports even when unrelated [agent] keys are invalid (a model validator would not run).
    allow_remote_ops: bool = False
    ops_listen: ListenAddressField = ListenAddress("127.0.0.1", 8081)
    ops_token: Secret | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("database", mode="before")
    @classmethod
    def _resolve_database(cls, value: Any, info: ValidationInfo) -> Any:
        """Resolve a relative database path against the config file's directory."""
        return _resolve_path(value, info, "a file path")

    @field_validator("ops_listen")
    @classmethod
    def _check_remote_ops(cls, value: ListenAddress, info: ValidationInfo) -> ListenAddress:
        """The ops listener takes stock-changing actions; exposing it must be deliberate."""
        # An invalid allow_remote_ops is missing from info.data; it is reported on its own.
        if not value.is_loopback and info.data.get("allow_remote_ops") is False:
            raise _custom_error(
                f"{value} is reachable from other machines, and the ops endpoint is meant for"
                " loopback only; set allow_remote_ops = true in [agent] if that is intended"
            )
        return value


class StockConfig(_Model):
    """[stock]: global rules for turning available stock into the number each channel shows."""

    buffer: Units = 0
    allocation_pct: Percent = 100
    max_qty: Units | None = None
    unpaid_reserves: bool = True
    refund_restocks: bool = True


class SyncConfig(_Model):
    """[sync]: how hard storesync retries, how it shuts down, how far back it reads."""

    push_max_attempts: PositiveInt = 8
    push_retry_base: Duration = timedelta(seconds=5)
    push_retry_max: Duration = timedelta(minutes=15)
    inbox_max_attempts: PositiveInt = 5
    drain_timeout: Duration = timedelta(seconds=20)
    webhook_body_limit: PositiveInt = 2 * 1024 * 1024  # bytes
    listing_refresh: Duration = timedelta(hours=1)
    order_lookback: Duration = timedelta(minutes=5)
    first_poll_window: Duration = timedelta(days=1)
    webhook_silence: Duration = timedelta(minutes=30)


class ShipmentsConfig(_Model):
    """[shipments]: a drop folder where a 3PL or shipping tool leaves CSV files of shipments."""

    drop_folder: Path | None = None
    scan_interval: Duration = timedelta(seconds=5)
    settle_time: Duration = timedelta(seconds=2)

    @field_validator("drop_folder", mode="before")
    @classmethod
    def _resolve_drop_folder(cls, value: Any, info: ValidationInfo) -> Any:
        """Resolve a relative folder against the config file's directory."""
        return None if value is None else _resolve_path(value, info, "a folder path")

    @field_validator("scan_interval")
    @classmethod
    def _check_scan_interval(cls, value: timedelta) -> timedelta:
        """A zero interval would spin the event loop."""
        if value < timedelta(milliseconds=100):
            raise _custom_error("must be at least 100ms")
        return value


class LocationConfig(_Model):
    """[[locations]]: a warehouse or stock room whose on-hand counts feed channels."""

    name: LocationName
    title: str | None = None


class BaseChannel(_Model):
    """Keys every [channels.<name>] table has, whatever its kind."""

    kind: str
    api_url: WebURL | None = None
    enabled: bool = True
    poll_interval: Duration = timedelta(seconds=60)
    reconcile_interval: Duration = timedelta(minutes=15)
    # How long one call may wait for the channel to answer before it is retried.
    request_timeout: Duration = timedelta(seconds=30)
    webhook_secret: Secret | None = None
    locations: list[LocationName] = Field(default_factory=list)
    buffer: Units | None = None
    allocation_pct: Percent | None = None
    max_qty: Units | None = None
    stock_edits: Literal["overwrite", "import"] = "overwrite"
    sku_map: dict[Sku, Sku] = Field(default_factory=dict)

    @field_validator("poll_interval", "reconcile_interval", "request_timeout")
    @classmethod
    def _check_positive(cls, value: timedelta) -> timedelta:
        """A zero interval would spin in a loop against the channel's rate limit."""
        if value <= timedelta():
            raise _custom_error("must be longer than 0s")
        return value


class ShopifyChannel(BaseChannel):
    """A Shopify store, via the GraphQL Admin API."""

    kind: Literal["shopify"]
    shop: NonEmptyStr
    access_token: Secret | None = None
    client_id: NonEmptyStr | None = None
    client_secret: Secret | None = None
    api_version: NonEmptyStr = "2026-07"
    # Leaky bucket of query-cost points: https://shopify.dev/docs/api/usage/rate-limits
    cost_bucket_size: PositiveInt = 1000
    cost_restore_rate: PositiveInt = 100  # points per second
    # The Shopify location whose `available` quantity storesync sets: its name or its gid.
    location: NonEmptyStr | None = None

    @field_validator("shop")
    @classmethod
    def _check_shop_domain(cls, value: str) -> str:
        """The shop is a bare domain; a pasted admin URL is the most common mistake."""
        if "/" in value or ":" in value:
            raise _custom_error(
                f"expected the shop's domain, e.g. \"acme.myshopify.com\", got '{value}'"
            )
        return value

    @model_validator(mode="after")
    def _check_credentials(self) -> ShopifyChannel:
        """Exactly one way to authenticate, so it is never ambiguous which one is in use."""
        has_client = self.client_id is not None or self.client_secret is not None
        if self.access_token is not None and has_client:
            raise _rule_error(
                "access_token",
                "set either access_token or client_id + client_secret, not both",
            )
        if self.access_token is None and (self.client_id is None or self.client_secret is None):
            missing = "client_secret" if self.client_id is not None else "client_id"
            detail = f"{missing} is missing" if has_client else "no credentials are set"
            raise _rule_error(
                "access_token",
                f"{detail}: set access_token (admin-created app), or client_id and client_secret"
                " (client-credentials grant)",
            )
        return self


class WooCommerceChannel(BaseChannel):
    """A WooCommerce store, via its REST API (wc/v3)."""

    kind: Literal["woocommerce"]
    api_url: WebURL  # required here: it is the store's own address
    consumer_key: Secret
    consumer_secret: Secret
    auth: Literal["basic", "query"] = "basic"
    shipment_tracking: bool = False


class AmazonChannel(BaseChannel):
    """An Amazon seller account, via the Selling Partner API."""

    kind: Literal["amazon"]
    seller_id: NonEmptyStr
    marketplace_ids: list[NonEmptyStr] = Field(min_length=1)
    region: Literal["na", "eu", "fe"] = "na"
    lwa_client_id: NonEmptyStr
    lwa_client_secret: Secret
    refresh_token: Secret
    lwa_url: WebURL | None = None
    # How far behind now an order poll stops: getOrders requires LastUpdatedBefore to be at
    # least two minutes in the past (ordersV0.json). Only a sandbox accepts less.
    order_settle: Duration = timedelta(minutes=2)
    # Stock pushes of more SKUs than this go as one JSON_LISTINGS_FEED, fewer as
    # patchListingsItem calls (5 per second): https://developer-docs.amazon.com/sp-api/docs/
    # listings-items-api-v2021-08-01-reference
    feed_threshold: PositiveInt = 50

    @model_validator(mode="after")
    def _check_settle(self) -> AmazonChannel:
        """Amazon's own endpoint refuses polls closer to now than two minutes."""
        if self.api_url is None and self.order_settle < timedelta(minutes=2):
            raise _custom_error(
                "order_settle must be at least 2m against Amazon's API (getOrders refuses "
                "LastUpdatedBefore later than 2 minutes ago); only a sandbox api_url accepts less"
            )
        return self


class EbayChannel(BaseChannel):
    """An eBay seller account, via the Sell Inventory and Fulfillment APIs."""

    kind: Literal["ebay"]
    client_id: NonEmptyStr
    client_secret: Secret
    refresh_token: Secret
    marketplace_id: NonEmptyStr = "EBAY_US"
    token_url: WebURL | None = None
    # Calls per day per API when eBay granted more than the defaults (Application Growth
    # Check): https://developer.ebay.com/develop/api/sell/api_call_limits
    daily_limits: dict[Literal["fulfillment", "inventory", "identity"], PositiveInt] = Field(
        default_factory=dict
    )
    # Revisions a listing takes per Pacific day; eBay blocks it for the day after 250
    # (https://developer.ebay.com/DevZone/merchant-data/CallRef/ReviseInventoryStatus.html).
    revisions_per_day: int = Field(250, ge=2, le=MAX_UNITS)


class ReferenceChannel(BaseChannel):
    """The reference channel: the simplest API that meets the connector contract.

    It exists so the runtime can be tested and demonstrated against a channel with no quirks;
    its sandbox is `storesync sandbox reference`.
    """

    kind: Literal["reference"]
    api_url: WebURL  # required: there is no public default
    api_key: Secret


ChannelConfig = Annotated[
    ShopifyChannel | WooCommerceChannel | AmazonChannel | EbayChannel | ReferenceChannel,
    Field(discriminator="kind"),
]
"""Any [channels.<name>] table; `kind` selects the model."""

CHANNEL_KINDS: dict[str, type[BaseChannel]] = {
    "shopify": ShopifyChannel,
    "woocommerce": WooCommerceChannel,
    "amazon": AmazonChannel,
    "ebay": EbayChannel,
    "reference": ReferenceChannel,
}


class BundleConfig(_Model):
    """[[bundles]]: a SKU sold as a fixed set of component SKUs; its stock follows theirs."""

    sku: Sku
    title: str | None = None
    components: dict[Sku, Annotated[int, Field(ge=1, le=MAX_UNITS)]] = Field(min_length=1)


class SkuChannelOverride(_Model):
    """[skus.<sku>.channels.<channel>]: rules for one SKU on one channel."""

    buffer: Units | None = None
    allocation_pct: Percent | None = None
    max_qty: Units | None = None
    fixed_qty: Units | None = None


class SkuOverride(_Model):
    """[skus.<sku>]: declares a SKU and optionally overrides the stock rules for it."""

    title: str | None = None
    buffer: Units | None = None
    allocation_pct: Percent | None = None
    max_qty: Units | None = None
    fixed_qty: Units | None = None
    # Low-stock alerts: a fixed reorder point, or the lead time its velocity-derived one uses.
    reorder_point: Units | None = None
    lead_time: Duration | None = None
    channels: dict[ChannelName, SkuChannelOverride] = Field(default_factory=dict)


class AlertsConfig(_Model):
    """[alerts]: low-stock and reorder alerts, and the signed webhook that announces them."""

    reorder_point: Units | None = None
    velocity_window: Duration = timedelta(days=14)
    lead_time: Duration = timedelta(days=7)
    check_interval: Duration = timedelta(minutes=1)
    webhook_url: WebURL | None = None
    webhook_secret: Secret | None = None
    webhook_timeout: Duration = timedelta(seconds=10)
    webhook_max_attempts: PositiveInt = 10
    webhook_retry_base: Duration = timedelta(seconds=30)
    webhook_retry_max: Duration = timedelta(hours=1)

    @field_validator("velocity_window", "check_interval", "webhook_timeout", "webhook_retry_base")
    @classmethod
    def _check_positive(cls, value: timedelta) -> timedelta:
        """A zero window divides by zero; a zero interval or wait would spin."""
        if value <= timedelta():
            raise _custom_error("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _check_webhook(self) -> AlertsConfig:
        """An unsigned alert could be forged by anyone who finds the URL: require the secret."""
        if self.webhook_url is not None and self.webhook_secret is None:
            raise _rule_error(
                "webhook_secret", "webhook_url is set but webhook_secret is not: alerts are "
                "signed with it, so the receiver can tell them from forgeries"
            )
        return self


class Config(_Model):
    """The whole config file, plus where it came from and the warnings found loading it."""

    agent: AgentConfig = Field(default_factory=AgentConfig)
    stock: StockConfig = Field(default_factory=StockConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    shipments: ShipmentsConfig = Field(default_factory=ShipmentsConfig)
    locations: list[LocationConfig] = Field(
        default_factory=lambda: [LocationConfig(name=IMPLICIT_LOCATION)]
    )
    channels: dict[ChannelName, ChannelConfig] = Field(default_factory=dict)
    bundles: list[BundleConfig] = Field(default_factory=list)
    skus: dict[Sku, SkuOverride] = Field(default_factory=dict)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    # Not TOML keys: private attributes keep them out of validation, dumps and unknown-key hints.
    _path: Path = PrivateAttr(default_factory=Path)
    _warnings: list[ConfigIssue] = PrivateAttr(default_factory=list)

    @property
    def path(self) -> Path:
        """The file this config was loaded from."""
        return self._path

    @property
    def warnings(self) -> list[ConfigIssue]:
        """Problems that do not stop the agent but deserve attention (e.g. literal secrets)."""
        return self._warnings

    @field_validator("locations")
    @classmethod
    def _default_location(cls, value: list[LocationConfig]) -> list[LocationConfig]:
        """A single-warehouse merchant need not declare one: it is called "main"."""
        return value or [LocationConfig(name=IMPLICIT_LOCATION)]

    @model_validator(mode="after")
    def _check_cross_references(self, info: ValidationInfo) -> Config:
        """Catch dangling names when a Config is built in code rather than by load_config."""
        # load_config runs the same checks on the raw TOML so they are reported together with
        # field errors; here they guard models built directly (tests, tools).
        if (info.context or {}).get(_CTX_REFERENCES_CHECKED):
            return self
        data = self.model_dump(include={"locations", "channels", "bundles", "skus"})
        problems = _check_references(data)
        if problems:
            raise _custom_error(
                "; ".join(f"{_render_loc(problem.loc)}: {problem.message}" for problem in problems)
            )
        return self


# --------------------------------------------------------------------------------------------
# Cross-reference checks (on raw TOML data, so they run even when other keys are invalid)


def _check_references(data: Mapping[str, Any]) -> list[_Problem]:
    """Find dangling or duplicate names between sections; tolerate sections of the wrong shape."""
    problems: list[_Problem] = []
    location_names = _check_locations(data.get("locations"), problems)
    channels = data.get("channels")
    channel_names = (
        [name for name in channels if isinstance(name, str)] if isinstance(channels, dict) else None
    )
    if isinstance(channels, dict) and location_names is not None:
        for name, channel in channels.items():
            if isinstance(channel, dict):
                _check_channel_locations(name, channel.get("locations"), location_names, problems)
    skus = data.get("skus")
    sku_names = list(skus) if isinstance(skus, dict) else []
    if isinstance(skus, dict) and channel_names is not None:
        for sku, override in skus.items():
            per_channel = override.get("channels") if isinstance(override, dict) else None
            if not isinstance(per_channel, dict):
                continue
            for channel_name in per_channel:
                if channel_name not in channel_names:
                    problems.append(
                        _Problem(
                            ("skus", sku, "channels", channel_name),
                            f"unknown channel '{channel_name}'"
                            f"{_did_you_mean(channel_name, channel_names)};"
                            f" channels: {', '.join(channel_names) or 'none defined'}",
                        )
                    )
    _check_bundles(data.get("bundles"), sku_names, problems)
    return problems


def _check_locations(raw: Any, problems: list[_Problem]) -> list[str] | None:
    """Report duplicate location names; return the names, or None if the section is malformed."""
    if raw is None or raw == []:
        return [IMPLICIT_LOCATION]
    if not isinstance(raw, list):
        return None
    names: list[str] = []
    first_index: dict[str, int] = {}
    for index, location in enumerate(raw):
        name = location.get("name") if isinstance(location, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_index:
            problems.append(
                _Problem(
                    ("locations", index, "name"),
                    f"duplicate location '{name}' (first defined at"
                    f" locations[{first_index[name]}])",
                )
            )
            continue
        first_index[name] = index
        names.append(name)
    return names


def _check_channel_locations(
    channel: str, raw: Any, location_names: list[str], problems: list[_Problem]
) -> None:
    """Every location a channel sells from must be a declared [[locations]] entry."""
    if not isinstance(raw, list):
        return
    seen: set[str] = set()
    for index, name in enumerate(raw):
        if not isinstance(name, str):
            continue
        loc: _Loc = ("channels", channel, "locations", index)
        if name in seen:
            problems.append(_Problem(loc, f"location '{name}' is listed twice"))
        elif name not in location_names:
            problems.append(
                _Problem(
                    loc,
                    f"unknown location '{name}'{_did_you_mean(name, location_names)};"
                    f" locations: {', '.join(location_names)}",
                )
            )
        seen.add(name)


def _check_bundles(raw: Any, sku_names: list[str], problems: list[_Problem]) -> None:
    """Bundles must be unique, flat (no bundle in a bundle) and built from declared SKUs."""
    if not isinstance(raw, list):
        return
    bundle_index: dict[str, int] = {}
    for index, bundle in enumerate(raw):
        sku = bundle.get("sku") if isinstance(bundle, dict) else None
        if not isinstance(sku, str):
            continue
        if sku in bundle_index:
            problems.append(
                _Problem(
                    ("bundles", index, "sku"),
                    f"duplicate bundle '{sku}' (first defined at bundles[{bundle_index[sku]}])",
                )
            )
        else:
            bundle_index[sku] = index
    for index, bundle in enumerate(raw):
        if not isinstance(bundle, dict) or not isinstance(bundle.get("components"), dict):
            continue
        own_sku = bundle.get("sku")
        for component in bundle["components"]:
            loc: _Loc = ("bundles", index, "components", component)
            if component == own_sku:
                problems.append(_Problem(loc, "a bundle cannot contain itself"))
            elif component in bundle_index:
                problems.append(
                    _Problem(
                        loc,
                        f"'{component}' is itself a bundle (bundles[{bundle_index[component]}]);"
                        " list its components instead, bundles cannot be nested",
                    )
                )
            elif component not in sku_names:
                # Without this check a typo would leave the bundle at zero stock forever, silently.
                header = _render_loc(("skus", component))
                problems.append(
                    _Problem(
                        loc,
                        f"unknown component '{component}'{_did_you_mean(component, sku_names)};"
                        f" declare it under [{header}]",
                    )
                )


# --------------------------------------------------------------------------------------------
# Translating pydantic errors


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional so the structural type (model, dict, list, union) remains."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = typing.get_args(annotation)
        if _is_union(annotation) and type(None) in args:
            rest = [arg for arg in args if arg is not type(None)]
            annotation = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
            continue
        return annotation


def _is_union(annotation: Any) -> bool:
    """True for both `X | Y` and typing.Union[X, Y]."""
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _union_tags(annotation: Any) -> dict[str, type[BaseModel]] | None:
    """For a union of models discriminated by `kind`, map each tag to its model."""
    if not _is_union(annotation):
        return None
    tags: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(annotation):
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            return None
        kind = member.model_fields.get("kind")
        if kind is None:
            return None
        for tag in typing.get_args(kind.annotation):
            tags[tag] = member
    return tags


def _child_type(container: Any, segment: str | int) -> Any:
    """The type found at `segment` inside `container`, or None when it cannot be known."""
    if isinstance(container, type) and issubclass(container, BaseModel):
        field = container.model_fields.get(str(segment))
        return _unwrap(field.annotation) if field is not None else None
    origin = typing.get_origin(container)
    args = typing.get_args(container)
    if origin is dict and len(args) == 2:
        return _unwrap(args[1])
    if origin is list and args:
        return _unwrap(args[0])
    return None


def _clean_loc(raw_loc: tuple[str | int, ...]) -> tuple[_Loc, list[Any]]:
    """Drop pydantic's internal segments from a loc; also return the type each key was sought in."""
    current: Any = Config
    segments: list[str | int] = []
    containers: list[Any] = []
    for position, segment in enumerate(raw_loc):
        # Dict key errors end in a "[key]" pseudo-segment; the key itself is already in the path.
        if segment == "[key]" and position == len(raw_loc) - 1:
            break
        tags = _union_tags(current)
        if tags is not None and isinstance(segment, str) and segment in tags:
            current = tags[segment]  # the discriminator value pydantic inserts, not a TOML key
            continue
        containers.append(current)
        segments.append(segment)
        current = _child_type(current, segment)
    return tuple(segments), containers


_EXPECTED_TYPES: dict[str, str] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _describe_input(value: Any) -> str:
    """Show a scalar as TOML would write it, and containers by their kind only."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(shown)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


def _problem_from_error(error: Mapping[str, Any]) -> _Problem:
    """Translate one pydantic error into a located, plain-language problem."""
    loc, containers = _clean_loc(tuple(error["loc"]))
    kind = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if kind == "config_rule":
        return _Problem((*loc, ctx["key"]), ctx["message"])
    if kind == "config_value":
        return _Problem(loc, ctx["message"])
    if kind == "missing":
        return _Problem(loc, "missing required key")
    if kind == "extra_forbidden":
        return _Problem(loc, _unknown_key_message(str(loc[-1]), containers[-1]))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(CHANNEL_KINDS)
        if kind == "union_tag_not_found":
            return _Problem((*loc, "kind"), f"missing required key; set it to one of: {kinds}")
        tag = str(ctx.get("tag"))
        return _Problem(
            (*loc, "kind"),
            f"unknown channel kind '{tag}'{_did_you_mean(tag, CHANNEL_KINDS)};"
            f" valid kinds: {kinds}",
        )
    if kind in _EXPECTED_TYPES:
        return _Problem(loc, f"expected {_EXPECTED_TYPES[kind]}, got {_describe_input(value)}")
    if kind == "literal_error":
        return _Problem(loc, f"expected {ctx.get('expected')}, got {_describe_input(value)}")
    if kind == "greater_than_equal":
        return _Problem(loc, f"must be at least {ctx.get('ge')}, got {_describe_input(value)}")
    if kind == "less_than_equal":
        return _Problem(loc, f"must be at most {ctx.get('le')}, got {_describe_input(value)}")
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return _Problem(loc, "must not be empty")
    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes ValueErrors raised by validators; the merchant does not need that.
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return _Problem(loc, message)


def _unknown_key_message(key: str, container: Any) -> str:
    """An unknown-key message with a did-you-mean drawn from the keys valid at that spot."""
    if not (isinstance(container, type) and issubclass(container, BaseModel)):
        return f"unknown key '{key}'"
    hint = _did_you_mean(key, container.model_fields)
    if issubclass(container, BaseChannel):
        owners = [name for name, model in CHANNEL_KINDS.items() if key in model.model_fields]
        kind_args = typing.get_args(container.model_fields["kind"].annotation)
        if owners and kind_args:
            # A key copied from another channel's table: say so rather than a vague typo hint.
            return (
                f"unknown key '{key}' for kind '{kind_args[0]}'"
                f" (only {' and '.join(owners)} channels have it){hint}"
            )
    return f"unknown key '{key}'{hint}"


# --------------------------------------------------------------------------------------------
# Ordering issues as they appear in the file


def _document_order(data: Any) -> dict[_Loc, int]:
    """Number every key path of the TOML document in reading order (tomllib keeps order)."""
    order: dict[_Loc, int] = {}

    def visit(value: Any, loc: _Loc) -> None:
        order[loc] = len(order)
        if isinstance(value, dict):
            for key, child in value.items():
                visit(child, (*loc, key))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                visit(child, (*loc, index))

    visit(data, ())
    return order


def _sorted_issues(file: str, problems: list[_Problem], data: Any) -> list[ConfigIssue]:
    """Bind problems to the file, in file order; a missing key sorts with its table."""
    order = _document_order(data)

    def position(problem: _Problem) -> tuple[int, int, str]:
        for length in range(len(problem.loc), -1, -1):
            if problem.loc[:length] in order:
                return (order[problem.loc[:length]], len(problem.loc), _render_loc(problem.loc))
        return (-1, len(problem.loc), _render_loc(problem.loc))

    unique = dict.fromkeys(problems)  # the same problem can be found by two checks
    return [
        ConfigIssue(file, _render_loc(problem.loc), problem.message)
        for problem in sorted(unique, key=position)
    ]


# --------------------------------------------------------------------------------------------
# Loading


def default_config_path(cli_value: str | None, *, environ: Mapping[str, str] | None = None) -> Path:
    """The config path to use: the CLI option, else $STORESYNC_CONFIG, else the system default."""
    if cli_value:
        return Path(cli_value)
    from_env = (os.environ if environ is None else environ).get(CONFIG_PATH_ENV)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH


_TOML_POSITION = re.compile(r"\s*\(at (line \d+, column \d+|end of document)\)$")


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and resolve a config file; raise ConfigError listing every problem."""
    file = str(path)
    config_path = Path(path)
    env: Mapping[str, str] = os.environ if environ is None else environ

    def fail(key_path: str, message: str) -> ConfigError:
        return ConfigError([ConfigIssue(file, key_path, message)])

    try:
        raw = config_path.read_bytes()
    except OSError as exc:
        raise fail("(file)", f"cannot read config file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise fail("(file)", f"not valid UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        where = match.group(1) if match else "(file)"
        text = message[: match.start()] if match else message
        raise fail(where, f"invalid TOML: {text}") from None

    base_dir = config_path.absolute().parent
    context = {_CTX_ENVIRON: env, _CTX_BASE_DIR: base_dir, _CTX_REFERENCES_CHECKED: True}
    problems: list[_Problem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        problems.extend(_problem_from_error(error) for error in exc.errors(include_url=False))
    problems.extend(_check_references(data))
    if problems or config is None:
        # `from None`: the pydantic error chain holds raw input values, secrets included.
        raise ConfigError(_sorted_issues(file, problems, data)) from None

    config._path = config_path
    config._warnings.extend(
        _sorted_issues(file, _literal_secret_warnings(config, config_path), data)
    )
    return config


def _iter_secrets(value: Any, loc: _Loc = ()) -> Iterator[tuple[_Loc, Secret]]:
    """Every Secret in a validated config, with its key path."""
    if isinstance(value, Secret):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _iter_secrets(getattr(value, name), (*loc, name))
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _iter_secrets(child, (*loc, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _iter_secrets(child, (*loc, index))


def _literal_secret_warnings(config: Config, config_path: Path) -> list[_Problem]:
    """Warn about secrets written into a config file that other users can read."""
    try:
        mode = config_path.stat().st_mode
    except OSError:
        return []
    if not mode & 0o077:
        return []
    return [
        _Problem(
            loc,
            f"literal secret in a file readable by group or others (mode {mode & 0o777:04o});"
            ' use { env = "..." }, { file = "..." } or { credential = "..." },'
            f" or chmod 600 {config_path}",
        )
        for loc, secret in _iter_secrets(config)
        if secret.source == "literal"
    ]


# --------------------------------------------------------------------------------------------
# Summary


def _yes_no(value: bool) -> str:
    """Booleans as a person reads them."""
    return "yes" if value else "no"


def _count(number: int, noun: str) -> str:
    """Pluralize a count for the summary: "1 entry", "3 entries"."""
    if number == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{number} {plural}"


def _rules_text(rules: BaseModel) -> str:
    """Describe the stock-rule keys set on an override, e.g. "buffer 2, allocation 80%"."""
    labels = {
        "buffer": "buffer {}",
        "allocation_pct": "allocation {}%",
        "max_qty": "max_qty {}",
        "fixed_qty": "fixed_qty {}",
    }
    parts = [
        label.format(getattr(rules, key))
        for key, label in labels.items()
        if getattr(rules, key, None) is not None
    ]
    return ", ".join(parts)


def format_summary(config: Config) -> str:
    """A one-screen, plain-text description of what the agent will do with this config."""
    agent, stock = config.agent, config.stock
    lines = [f"config: {config.path}", "agent:"]
    lines.append(f"  database:       {agent.database}")
    lines.append(f"  webhook listen: {agent.webhook_listen}")
    ops_token = f"ops token from {agent.ops_token.source}" if agent.ops_token else "no ops token"
    remote = "remote allowed" if agent.allow_remote_ops else "loopback only"
    lines.append(f"  ops listen:     {agent.ops_listen} ({remote}, {ops_token})")
    lines.append(f"  logs:           format {agent.log_format}, level {agent.log_level}")
    drop = config.shipments.drop_folder
    if drop is not None:
        lines.append(
            f"shipments: drop folder {drop}, scanned every"
            f" {format_duration(config.shipments.scan_interval)}"
        )
    lines.append(
        f"stock defaults: buffer {stock.buffer}, allocation {stock.allocation_pct}%,"
        f" max_qty {stock.max_qty if stock.max_qty is not None else 'none'};"
        f" unpaid orders reserve stock: {_yes_no(stock.unpaid_reserves)};"
        f" refunds restock: {_yes_no(stock.refund_restocks)}"
    )

    all_locations = [location.name for location in config.locations]
    lines.append(f"locations ({len(config.locations)}):")
    for location in config.locations:
        title = f" - {location.title}" if location.title else ""
        lines.append(f"  {location.name}{title}")

    lines.append(f"channels ({len(config.channels)}):")
    for name, channel in config.channels.items():
        state = "" if channel.enabled else ", disabled"
        lines.append(f"  {name} ({channel.kind}{state})")
        lines.append(
            f"    api_url {channel.api_url or '(default)'};"
            f" poll every {format_duration(channel.poll_interval)},"
            f" reconcile every {format_duration(channel.reconcile_interval)}"
        )
        sells_from = channel.locations or all_locations
        scope = ", ".join(channel.locations) if channel.locations else "all"
        lines.append(
            f"    locations {scope} (ships from {sells_from[0]});"
            f" stock_edits {channel.stock_edits}; sku_map {_count(len(channel.sku_map), 'entry')}"
        )
        rules = _rules_text(channel)
        if rules:
            lines.append(f"    overrides: {rules}")
        secrets = [
            f"{_render_loc(loc)} from {secret.source}" for loc, secret in _iter_secrets(channel)
        ]
        if secrets:
            lines.append(f"    secrets: {', '.join(secrets)}")

    lines.append(f"bundles ({len(config.bundles)}):")
    for bundle in config.bundles:
        parts = ", ".join(f"{sku} x {qty}" for sku, qty in bundle.components.items())
        lines.append(f"  {bundle.sku}: {parts}")

    lines.append(f"sku overrides ({len(config.skus)}):")
    if len(config.skus) <= 10:
        for sku, override in config.skus.items():
            details = [_rules_text(override)] if _rules_text(override) else []
            details += [
                f"{channel}: {_rules_text(rules) or 'no changes'}"
                for channel, rules in override.channels.items()
            ]
            lines.append(f"  {sku}" + (f" ({'; '.join(details)})" if details else ""))

    alerts = config.alerts
    own_points = sum(1 for override in config.skus.values() if override.reorder_point is not None)
    default = alerts.reorder_point if alerts.reorder_point is not None else "none"
    webhook = (
        f"webhook {alerts.webhook_url} (secret from {alerts.webhook_secret.source})"
        if alerts.webhook_url and alerts.webhook_secret else "no webhook"
    )
    lines.append(
        f"low-stock alerts: {_count(own_points, 'SKU')} with a reorder point, default {default};"
        f" velocity over {format_duration(alerts.velocity_window)} x lead time"
        f" {format_duration(alerts.lead_time)}; check every"
        f" {format_duration(alerts.check_interval)}; {webhook}"
    )

    if config.warnings:
        lines.append(f"warnings ({len(config.warnings)}):")
        lines.extend(f"  {warning}" for warning in config.warnings)
    else:
        lines.append("warnings: none")
    return "\n".join(lines)
