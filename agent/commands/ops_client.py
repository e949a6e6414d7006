"""How CLI commands talk to the running agent: its ops listener, with the config's ops token."""

from __future__ import annotations

from typing import Any

import httpx

from agent.commands.context import EXIT_AGENT_DOWN, EXIT_CONFIG, CommandFailed
from agent.config import Config

TIMEOUT_S = 10.0


def ops_url(config: Config) -> str:
    """The base URL of the config's ops listener (a wildcard address is reached on loopback)."""
    address = config.agent.ops_listen
    host = f"[{address.host}]" if ":" in address.host else address.host
    if address.host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{address.port}"


class OpsClient:
    """GET and POST to the agent; an unreachable agent is CommandFailed(EXIT_AGENT_DOWN)."""

    def __init__(self, config: Config) -> None:
        self.base = ops_url(config)
        self.token = config.agent.ops_token

    def get(self, path: str) -> Any:
        """A GET answered with JSON."""
        response = self._send("GET", path, None, {})
        if response.status_code >= 400:
            raise CommandFailed(
                f"the agent answered {response.status_code}: {error_text(response)}"
            )
        return response.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        """A guarded POST with the bearer token; 401 becomes a config error."""
        if self.token is None:
            raise CommandFailed(
                "this needs the agent's ops token: set [agent] ops_token in the config",
                EXIT_CONFIG,
            )
        response = self._send(
            "POST", path, body, {"Authorization": f"Bearer {self.token.reveal()}"}
        )
        if response.status_code == 401:
            raise CommandFailed(
                f"the agent refused the ops token: {error_text(response)} (if the token was "
                "changed in the config, reload the agent: systemctl reload storesync)",
                EXIT_CONFIG,
            )
        return response

    def _send(
        self, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> httpx.Response:
        url = self.base + path
        try:
            return httpx.request(method, url, json=body, headers=headers, timeout=TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise CommandFailed(
                f"cannot reach the agent at {self.base} ({exc}); is `storesync run` running?",
                EXIT_AGENT_DOWN,
            ) from exc


def error_text(response: httpx.Response) -> str:
    """The agent's {"error": ...} message, or the raw body."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
