"""Reading JSON that a channel or a stranger sent: every way it can be unreadable is a ValueError.

json.loads raises JSONDecodeError or UnicodeDecodeError (both ValueErrors) for a bad body, but
RecursionError for one nested past the interpreter's limit: a 20 kB body of `[` does it. Webhook
bodies and channel responses go through here, so such a body is refused like any other garbage
instead of escaping as a 500 or a crashed job.
"""

from __future__ import annotations

import json
from typing import Any


class UnreadableJSON(ValueError):
    """The bytes are not JSON storesync can read."""


def loads(raw: bytes | str) -> Any:
    """The parsed JSON; UnreadableJSON (a ValueError) for anything json cannot read."""
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise UnreadableJSON("JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UnreadableJSON(str(exc)) from exc
