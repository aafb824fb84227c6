"""The simulator: one aiohttp app serving both fake vendors, recording what it receives.

``/v1/chat/completions`` is OpenAI, ``/v1/messages`` is Anthropic, ``/v2/chat`` (and
``/v1/check-api-key``) Cohere, and ``/v1/models`` answers in Anthropic's format when the
request carries ``anthropic-version``. Point a gateway's providers at
``http://127.0.0.1:PORT/v1`` (openai) and ``http://127.0.0.1:PORT`` (anthropic, cohere).
``/openai/...`` is Azure OpenAI (base_url ``http://127.0.0.1:PORT``) and
``/compat/v1/...`` an OpenAI-compatible server (base_url ``http://127.0.0.1:PORT/compat/v1``).
Tests program faults and read records in-process through :class:`Sim`, or from
another process through the ``/_sim/...`` control API.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from types import ModuleType
from typing import Any

import orjson
from aiohttp import web

from proxy.sim import (
    anthropic,
    azure,
    azure_responses,
    cohere,
    compat,
    gemini,
    openai,
    openai_responses,
    vertex,
)
from proxy.sim.faults import (
    HTML_PAGE,
    Fault,
    FaultQueue,
    Reply,
    deliver,
    error_reply,
    hang,
    kit_dir,
    pause,
    reset,
    without_usage,
)
from proxy.sim.schemas import SCHEMAS, request_validator, schema_errors

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})
CLOSING = web.AppKey("sim_closing", asyncio.Event)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """How the fake vendors behave. Keys left None are not checked."""

    validate: bool | None = None
    """Validate every request body against the vendor's request schema from the kit.
    None: only when the kit is present (an installed demo has none); True requires it."""
    n_chunks: int = 8
    """Content pieces per streamed reply."""
    chunk_delay_ms: float = 0
    """Pause between stream events."""
    openai_key: str | None = None
    anthropic_key: str | None = None
    azure_key: str | None = None
    azure_token: str | None = None
    """An Entra ID token the fake Azure accepts as ``Authorization: Bearer`` besides the key."""
    compat_key: str | None = None
    """None: the OpenAI-compatible server takes any caller, like a local vLLM or Ollama."""
    compat_usage: bool = True
    """False: the OpenAI-compatible server never reports usage."""
    compat_stream_options: bool = True
    """False: it refuses a body carrying ``stream_options`` (400)."""
    cohere_key: str | None = None
    extra_models: frozenset[str] = frozenset()
    """Model ids accepted besides each vendor's catalogue and any ``sim-*`` id."""
    max_records: int = 10_000
    """Oldest records are dropped beyond this many."""
    gemini_key: str | None = None
    vertex_accounts: tuple[tuple[str, str], ...] = ()
    """Vertex service accounts (client_email, public key PEM) whose signed JWTs ``/token``
    accepts; empty: Vertex requests need no token."""
    vertex_token_ttl_s: int = 3600
    vertex_token_error: int | None = None
    """Status the token endpoint answers instead of a token (e.g. 401)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the fake vendor saw it; updated (replaced) when its response ends."""

    path: str
    method: str
    headers: Mapping[str, str]
    body: bytes
    json: Any
    t: float
    """``time.monotonic()`` at receipt."""
    done: bool = False
    disconnected: bool = False
    """The client went away before the response was complete."""
    status: int | None = None
    fault: str | None = None
    schema_errors: tuple[str, ...] = ()

    @property
    def model(self) -> str | None:
        if "/models/" in self.path:  # Gemini: the model is in the URL
            return self.path.rsplit("/models/", 1)[1].split(":", 1)[0]
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def stream(self) -> bool:
        if ":streamGenerateContent" in self.path:
            return True
        return isinstance(self.json, dict) and bool(self.json.get("stream"))

    def summary(self) -> dict[str, Any]:
        """JSON-able view for the control API; credentials are redacted."""
        out = asdict(self)
        out.pop("body")
        out["headers"] = {
            k: ("<redacted>" if k in SECRET_HEADERS else v) for k, v in self.headers.items()
        }
        out["schema_errors"] = list(self.schema_errors)
        return out


class Sim:
    """Config, expected keys, the fault queue and the records of one simulated upstream."""

    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        self.tokens = vertex.TokenIssuer()
        self.config = replace(config or SimConfig(), **overrides)
        self.faults = FaultQueue()
        self._received: list[Received] = []
        self._next = 0  # sequence number of the next record
        self._first = 0  # sequence number of self._received[0]
        self._cond = threading.Condition()

    @property
    def config(self) -> SimConfig:
        return self._config

    @config.setter
    def config(self, config: SimConfig) -> None:
        """Resolve ``validate=None`` and compile the validators before serving with them."""
        if config.validate is None:
            present = all((kit_dir() / path).is_file() for path in SCHEMAS.values())
            config = replace(config, validate=present)
        if config.validate:
            for vendor in SCHEMAS:
                request_validator(vendor)
        self.tokens.accounts = dict(config.vertex_accounts)
        self.tokens.ttl_s = config.vertex_token_ttl_s
        self.tokens.error_status = config.vertex_token_error
        self._config = config

    def configure(self, **changes: Any) -> SimConfig:
        """Change settings while serving (e.g. ``chunk_delay_ms``); returns the new config."""
        self.config = replace(self.config, **changes)
        return self.config

    # --- records -------------------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """A snapshot of every vendor request so far, in arrival order."""
        with self._cond:
            return list(self._received)

    @property
    def violations(self) -> list[Received]:
        """Requests whose body did not validate against the vendor schema."""
        return [r for r in self.received if r.schema_errors]

    def clear(self) -> None:
        with self._cond:
            self._received.clear()
            self._first = self._next

    def wait_for(
        self, predicate: Callable[[list[Received]], bool] | None = None, timeout: float = 5.0
    ) -> list[Received]:
        """Block until ``predicate(records)`` holds (default: any record); TimeoutError after
        ``timeout``. Not for code running on the sim's own event loop: use wait_for_async."""
        check = predicate or bool
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check(list(self._received)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"sim: condition not met in {timeout}s: {self._received}")
                self._cond.wait(remaining)
            return list(self._received)

    def wait_for_requests(
        self, n: int = 1, timeout: float = 5.0, done: bool = False
    ) -> list[Received]:
        """The first ``n`` records, once they exist (and have finished, with ``done``)."""
        records = self.wait_for(
            lambda rs: len(rs) >= n and (not done or all(r.done for r in rs[:n])), timeout
        )
        return records[:n]

    async def wait_for_async(
        self, predicate: Callable[[list[Received]], bool] | None = None, timeout: float = 5.0
    ) -> list[Received]:
        """:meth:`wait_for` for code sharing the sim's event loop."""
        check = predicate or bool
        deadline = time.monotonic() + timeout
        while not check(records := self.received):
            if time.monotonic() > deadline:
                raise TimeoutError(f"sim: condition not met in {timeout}s: {records}")
            await asyncio.sleep(0.005)
        return records

    def _record(self, request: web.Request, body: bytes, data: Any) -> int:
        """Append a record; returns its sequence number (stable across trims and clears)."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        record = Received(request.path, request.method, headers, body, data, time.monotonic())
        with self._cond:
            self._received.append(record)
            overflow = len(self._received) - self.config.max_records
            if overflow > 0:  # a long benchmark must not grow memory without bound
                del self._received[:overflow]
                self._first += overflow
            self._next += 1
            self._cond.notify_all()
            return self._next - 1

    def _update(self, seq: int, **changes: Any) -> None:
        with self._cond:
            at = seq - self._first
            if 0 <= at < len(self._received):
                self._received[at] = replace(self._received[at], **changes)
            self._cond.notify_all()

    # --- serving -------------------------------------------------------------------------------

    def _credentials(self, vendor: ModuleType) -> tuple[Any, ...]:
        config = self.config
        if vendor is vertex:  # OAuth tokens from the fake token endpoint
            return (self.tokens if config.vertex_accounts else None,)
        if vendor.NAME == azure.NAME:  # its Responses API (azure_responses) too
            return config.azure_key, config.azure_token
        return (getattr(config, f"{vendor.NAME}_key"),)

    def _answer(
        self, request: web.Request, vendor: ModuleType, data: Any, seq: int, fault: Fault | None
    ) -> Reply:
        config = self.config
        if vendor.NAME == azure.NAME:  # the URL is checked before the key, as Azure does
            data, refused = azure.prepare(request, data, config.extra_models)
            if refused is not None:
                return refused
        denied = vendor.authorize(request.headers, *self._credentials(vendor))
        if denied is not None:
            return denied
        if request.path == cohere.CHECK_API_KEY_PATH:
            return cohere.check_api_key_reply()
        if request.method == "GET":
            return vendor.models_reply(config.extra_models)
        if not isinstance(data, dict):
            return vendor.bad_request(vendor.INVALID_JSON)
        if config.validate:
            errors = schema_errors(getattr(vendor, "SCHEMA", vendor.NAME), data)
            if errors:
                self._update(seq, schema_errors=errors)
                return vendor.bad_request(f"Request does not match the schema: {errors[0]}")
        n_chunks = fault.n_chunks if fault is not None and fault.n_chunks else config.n_chunks
        if vendor is compat:
            return compat.answer(
                data,
                n_chunks=n_chunks,
                extra_models=config.extra_models,
                usage=config.compat_usage,
                stream_options=config.compat_stream_options,
            )
        route = vendor.route_args(request.path, request.query) if vendor in _ROUTED else {}
        return vendor.answer(data, n_chunks=n_chunks, extra_models=config.extra_models, **route)

    async def _serve(
        self, request: web.Request, vendor: ModuleType, data: Any, seq: int, fault: Fault | None
    ) -> tuple[web.StreamResponse, bool]:
        closing = request.app[CLOSING]
        kind = fault.kind if fault is not None else "ok"
        if kind == "reset":
            reset(request)
            return web.Response(), False
        if kind == "hang":
            return web.Response(), await hang(request, closing)
        delay_ms = self.config.chunk_delay_ms
        if fault is not None:
            await pause(fault.stall_s if kind == "slow_headers" else 0, closing)
            if fault.chunk_delay_ms is not None:
                delay_ms = fault.chunk_delay_ms
        reply = _fault_reply(vendor, fault)
        if reply is None:
            reply = self._answer(request, vendor, data, seq, fault)
            if kind == "stream_error" and reply.events is None:
                reply = error_reply(vendor.NAME, vendor.STREAM_ERROR_STATUS)
            elif kind == "no_usage" and reply.status == 200:
                reply = without_usage(reply)
        return await deliver(request, reply, fault, delay_ms / 1000, closing)

    async def handle(self, request: web.Request, vendor: ModuleType) -> web.StreamResponse:
        """Record, take a fault, answer (or misbehave), and note how it ended."""
        body = await request.read()
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        seq = self._record(request, body, data)
        fault = self.faults.take(request.path)
        kind = fault.kind if fault is not None else None
        try:
            response, gone = await self._serve(request, vendor, data, seq, fault)
        except asyncio.CancelledError:
            self._update(seq, done=True, disconnected=True, fault=kind)
            raise
        status = None if kind in ("reset", "hang") else response.status
        self._update(seq, done=True, disconnected=gone, status=status, fault=kind)
        return response


_ROUTED = (gemini, vertex)  # vendors whose URL names the model


def _fault_reply(vendor: ModuleType, fault: Fault | None) -> Reply | None:
    """The replies a fault makes up instead of the vendor's answer."""
    if fault is None:
        return None
    if fault.kind == "status":
        status = fault.status or 500
        return error_reply(
            vendor.NAME, status, sample=fault.sample, body=fault.body, headers=fault.headers
        )
    if fault.kind == "wrong_content_type":
        return Reply(fault.status or 200, {"content-type": "text/html; charset=utf-8"}, HTML_PAGE)
    return None


# --- the control API ---------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _control_routes(sim: Sim) -> list[web.RouteDef]:
    async def push_faults(request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read())
            items = data if isinstance(data, list) else [data]
            faults = [Fault.from_dict(item) for item in items]
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        sim.faults.push(*faults)
        return _json({"queued": len(sim.faults)})

    async def list_faults(request: web.Request) -> web.Response:
        return _json({"faults": [f.to_dict() for f in sim.faults.pending()]})

    async def clear_faults(request: web.Request) -> web.Response:
        cleared = len(sim.faults)
        sim.faults.clear()
        return _json({"cleared": cleared})

    async def list_received(request: web.Request) -> web.Response:
        records = sim.received
        return _json({"count": len(records), "requests": [r.summary() for r in records]})

    async def clear_received(request: web.Request) -> web.Response:
        sim.clear()
        return _json({"cleared": True})

    async def get_config(request: web.Request) -> web.Response:
        config = sim.config
        return _json(
            {
                "validate": config.validate,
                "n_chunks": config.n_chunks,
                "chunk_delay_ms": config.chunk_delay_ms,
            }
        )

    async def patch_config(request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            allowed = {"validate", "n_chunks", "chunk_delay_ms", "compat_usage"}
            allowed |= {"compat_stream_options", "azure_token"}
            if not isinstance(changes, dict) or set(changes) - allowed:
                raise ValueError(f"settable: {sorted(allowed)}")
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        sim.configure(**changes)
        return await get_config(request)

    return [
        web.post("/_sim/faults", push_faults),
        web.get("/_sim/faults", list_faults),
        web.delete("/_sim/faults", clear_faults),
        web.get("/_sim/received", list_received),
        web.delete("/_sim/received", clear_received),
        web.get("/_sim/config", get_config),
        web.patch("/_sim/config", patch_config),
    ]


_VERTEX = "/v1/projects/{project}/locations/{location}"


def create_app(sim: Sim) -> web.Application:
    """Both fake vendors and the control API on one app."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[CLOSING] = asyncio.Event()

    def serve(vendor: ModuleType) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await sim.handle(request, vendor)

        return handler

    chat, messages, responses = serve(openai), serve(anthropic), serve(openai_responses)
    cohere_chat, compat_route = serve(cohere), serve(compat)
    azure_route, azure_responses_route = serve(azure), serve(azure_responses)
    gemini_route, vertex_route = serve(gemini), serve(vertex)

    async def models(request: web.Request) -> web.StreamResponse:
        vendor = anthropic if "anthropic-version" in request.headers else openai
        return await sim.handle(request, vendor)

    async def token(request: web.Request) -> web.StreamResponse:
        reply = sim.tokens.grant(await request.read())
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    async def closing(app: web.Application) -> None:
        app[CLOSING].set()

    app.on_shutdown.append(closing)
    app.add_routes(
        [
            web.post("/v1/chat/completions", chat),
            web.post("/v1/messages", messages),
            web.post("/v1/responses", responses),
            web.get("/v1/models", models),
            web.post("/openai/deployments/{deployment}/chat/completions", azure_route),
            web.post("/openai/v1/chat/completions", azure_route),
            web.post("/openai/v1/responses", azure_responses_route),
            web.get("/openai/models", azure_route),
            web.get("/openai/v1/models", azure_route),
            web.post("/compat/v1/chat/completions", compat_route),
            web.get("/compat/v1/models", compat_route),
            web.post("/v2/chat", cohere_chat),
            web.post(cohere.CHECK_API_KEY_PATH, cohere_chat),
            web.post("/v1beta/models/{call}", gemini_route),
            web.get("/v1beta/models", gemini_route),
            web.post(f"{_VERTEX}/publishers/google/models/{{call}}", vertex_route),
            web.get(_VERTEX, vertex_route),
            web.post("/token", token),
            *_control_routes(sim),
        ]
    )
    return app
