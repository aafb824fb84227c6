"""THE FLOOR: the least a Python proxy on our stack (aiohttp + uvloop + orjson) can do.

    python tests/bench/floor.py --port 9200 --upstream http://127.0.0.1:9100

Parse the request, re-serialise it, POST it upstream on a pooled session, parse the response,
re-serialise it, add one header. Streams are relayed chunk by chunk, unparsed. No routing,
validation, cost, metrics or logging: every gateway target in issue 6 is a ratio to this.
"""

from __future__ import annotations

import argparse

import orjson
import uvloop
from aiohttp import ClientSession, TCPConnector, web

JSON = {"content-type": "application/json"}


async def relay(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    session: ClientSession = request.app["session"]
    url = request.app["upstream"] + request.path
    async with session.post(url, data=orjson.dumps(body), headers=JSON) as up:
        if body.get("stream"):
            out = web.StreamResponse(status=up.status, headers={"x-floor": "1"})
            out.content_type = up.content_type
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out
        data = orjson.loads(await up.read())
    return web.Response(body=orjson.dumps(data), status=up.status, headers={**JSON, "x-floor": "1"})


async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    app["session"] = ClientSession(connector=TCPConnector(limit=0, keepalive_timeout=90))
    yield
    await app["session"].close()


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's bare pass-through floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="origin, e.g. http://127.0.0.1:9100")
    args = parser.parse_args()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["upstream"] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/{tail:.*}", relay)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
