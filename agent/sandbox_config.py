"""Config text for channels served by sandboxes: the demo, the benchmarks and the daemon tests
write their storesync.toml with it, so each channel kind's keys live in one place
(connectors.sandbox.SANDBOX_CHANNELS)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.sandbox import SANDBOX_CHANNELS


def toml_value(value: Any) -> str:
    """One TOML value: strings, booleans, numbers, lists, and inline tables of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def secret_env(variable: str) -> dict[str, str]:
    """A secret read from an environment variable."""
    return {"env": variable}


def secret_file(path: str) -> dict[str, str]:
    """A secret read from a file (relative paths are relative to the config file)."""
    return {"file": path}


def channel_table(
    name: str,
    kind: str,
    url: str,
    secret: str | Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A [channels.<name>] table pointing a `kind` channel at its sandbox at `url`.

    `secret` is the sandbox's API key as a literal, or an {env}/{file} reference.
    """
    keys = SANDBOX_CHANNELS[kind](url)
    values: dict[str, Any] = {"kind": kind, **keys.plain, keys.secret_key: secret, **(extra or {})}
    lines = [f"[channels.{name}]", *(f"{k} = {toml_value(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"
