"""An HTTP server that answers every POST with 200 after reading its body, storing nothing.

`python -m bench.floor_server PORT`: the floor of one webhook round trip on this machine (aiohttp,
loopback, the same client), against which the agent's durable acknowledgement is measured.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def acknowledge(request: web.Request) -> web.Response:
    """Read the body, answer 200."""
    await request.read()
    return web.json_response({"stored": False})


def main() -> None:
    """Serve on 127.0.0.1:PORT until killed."""
    app = web.Application()
    app.router.add_post("/webhooks/{channel}", acknowledge)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
