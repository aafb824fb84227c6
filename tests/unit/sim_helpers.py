"""Shared parts of the simulator tests: one sim on a background server, a raw client, bodies.

The fixtures are imported by name into each test module, so every module gets its own
module-scoped server while the sim's state is reset before each test. They are named with
``name=`` so that importing them does not clash with the test parameters that use them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.sim import BackgroundServer, Sim, SimConfig, create_app
from proxy.sse import iter_events
from tests.kit import assert_valid

OPENAI_KEY = "sk-sim-test"
ANTHROPIC_KEY = "ak-sim-test"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a place.",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
            "optional": {"type": "boolean"},
        },
        "required": ["location", "unit", "days"],
    },
}
TIME = {
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}
OA_TOOLS = [{"type": "function", "function": WEATHER}, {"type": "function", "function": TIME}]
AN_TOOLS = [{"name": t["name"], "input_schema": t["parameters"]} for t in (WEATHER, TIME)]


# --- fixtures and helpers ----------------------------------------------------------------------

_SIM = Sim(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)


@pytest.fixture(name="server", scope="module")
def server_fixture() -> Iterator[BackgroundServer]:
    with BackgroundServer(lambda: create_app(_SIM), shutdown_timeout=2) as srv:
        yield srv


@pytest.fixture(name="sim")
def sim_fixture(server: BackgroundServer) -> Sim:
    _SIM.faults.clear()
    _SIM.clear()
    _SIM.config = SimConfig(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)
    return _SIM


@dataclass
class Raw:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: BaseException | None = None
    first_byte_s: float = 0.0
    elapsed_s: float = 0.0

    def json(self) -> Any:
        return orjson.loads(self.body)


def raw(
    server: BackgroundServer,
    path: str,
    body: Any = None,
    headers: dict | None = None,
    timeout: float = 5,
) -> Raw:
    """One request with a plain aiohttp client; transport failures are captured, not raised."""

    async def go() -> Raw:
        out = Raw()
        start = time.monotonic()
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            try:
                method = "GET" if body is None else "POST"
                async with session.request(
                    method, server.url + path, json=body, headers=headers
                ) as resp:
                    out.status, out.headers = (
                        resp.status,
                        {k.lower(): v for k, v in resp.headers.items()},
                    )
                    out.first_byte_s = time.monotonic() - start
                    async for chunk in resp.content.iter_any():
                        out.body += chunk
            except (aiohttp.ClientError, TimeoutError) as exc:
                out.error = exc
        out.elapsed_s = time.monotonic() - start
        return out

    return asyncio.run(go())


def oa_headers(key: str = OPENAI_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def an_headers(key: str = ANTHROPIC_KEY) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": "2023-06-01"}


def oa_body(content: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


def an_body(content: str = "hello there", **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}]
    return {"model": "claude-sonnet-4-6", "max_tokens": 256, "messages": messages, **extra}


def openai_chunks(body: bytes) -> list[dict[str, Any]]:
    events = list(iter_events(body))
    assert events[-1].data == b"[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    for chunk in chunks:
        assert_valid("openai/chat.completions.chunk.schema.json", chunk)
    return chunks


def anthropic_events(body: bytes) -> list[dict[str, Any]]:
    events = []
    for event in iter_events(body):
        data = orjson.loads(event.data)
        assert event.name == data["type"]
        assert_valid("anthropic/stream/stream-event.schema.json", data)
        events.append(data)
    return events
