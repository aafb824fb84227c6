"""The hub where client dialects and vendor wire formats meet.

The unified format is OpenAI Chat Completions. Each client dialect (an inbound endpoint's
format: :data:`DIALECTS`) translates requests to it and responses and stream events from it;
each vendor wire format (a :class:`proxy.providers.base.Vendor`) translates requests from it
and responses and stream events to it. A request therefore goes dialect -> unified -> wire and
its answer wire -> unified -> dialect, whatever the pair: a new dialect or vendor is one module
(a spoke), never a new pairwise branch. A request whose dialect equals the vendor's wire is
passed through byte for byte, rewriting only the model (and, for the OpenAI wire, asking
streams for usage and shortening tool-call ids longer than OpenAI accepts). The OpenAI
spokes are identities, so OpenAI <-> any vendor costs one translation. One spoke applies even
to a pass-through: when the wire is the unified format itself, its wire -> unified spoke is a
repair (Azure's and compatible servers' bends of the OpenAI format; the identity for OpenAI).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson

from proxy.providers import anthropic, openai, responses
from proxy.providers.base import Dialect, NativeDialect, StreamTranslator, Vendor
from proxy.providers.openai_ids import fit_tool_call_ids

if TYPE_CHECKING:
    from proxy.engine.route import Target

OPENAI = "openai"
ANTHROPIC = "anthropic"
RESPONSES = responses.NAME
JSON = dict[str, Any]

DIALECTS: dict[str, Dialect] = {
    OPENAI: openai.DIALECT,
    ANTHROPIC: anthropic.DIALECT,
    RESPONSES: responses.DIALECT,
}
"""Client dialects by name; the server maps each inbound endpoint to one of these."""


def dialect_for(name: str) -> Dialect:
    return DIALECTS[name]


_NO_NATIVES: MappingProxyType[str, NativeDialect] = MappingProxyType({})


def native_target(dialect: str, target: Target) -> Target:
    """``target`` speaking the client's dialect as is when its vendor declares it among its
    ``natives`` (OpenAI's Responses API): the rest of the hub then sees dialect == wire and
    passes the request, its answer and its stream through. One comparison for the rest."""
    vendor = target.vendor
    if dialect == vendor.wire:
        return target
    native = getattr(vendor, "natives", _NO_NATIVES).get(dialect)
    return target if native is None else type(target)(target.model, target.provider, native)


def upstream_body(dialect: str, body: JSON, raw: bytes, target: Target) -> tuple[bytes, list[str]]:
    """The bytes to send upstream and the names of parameters dropped on the way.

    Pass-through sends the client's own bytes when nothing changes (no re-serialising).
    """
    wire = target.vendor.wire
    if dialect == wire:
        return _passthrough(body, raw, wire, target.upstream_model), []
    unified = DIALECTS[dialect].request_to_unified(body)
    out, dropped = target.vendor.request_from_unified(unified, target)
    return orjson.dumps(out), dropped


def _passthrough(body: JSON, raw: bytes, wire: str, upstream: str) -> bytes:
    changed = dict(body) if body.get("model") != upstream else None
    if changed is not None:
        changed["model"] = upstream
    if wire != OPENAI:
        return raw if changed is None else orjson.dumps(changed)
    if body.get("stream") and not wants_usage(body):
        changed = changed if changed is not None else dict(body)
        changed["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    messages = fit_tool_call_ids(body.get("messages"))
    if messages is not None:
        changed = changed if changed is not None else dict(body)
        changed["messages"] = messages
    return raw if changed is None else orjson.dumps(changed)


def client_response(dialect: str, vendor: Vendor, response: JSON, created: int) -> JSON:
    """An upstream response in the client's dialect."""
    if dialect == vendor.wire:  # passed through; the unified wire's spoke is a repair
        return vendor.response_to_unified(response, created) if dialect == OPENAI else response
    unified = vendor.response_to_unified(response, created)
    return DIALECTS[dialect].response_from_unified(unified)


def stream_translator(
    dialect: str, vendor: Vendor, created: int, model: str
) -> StreamTranslator | None:
    """A stateful event translator (wire -> unified -> dialect), or None for a pass-through
    (the unified wire's own spoke, a repairer, when its vendor has one)."""
    if dialect == vendor.wire:
        return vendor.stream_to_unified(created) if dialect == OPENAI else None
    inbound = vendor.stream_to_unified(created)
    outbound = DIALECTS[dialect].stream_from_unified(model)
    if inbound is None:
        return outbound
    if outbound is None:
        return inbound
    return ChainedStream(inbound, outbound)


class ChainedStream:
    """Two translators in series: the wire's events become unified chunks, which become the
    dialect's events. ``done`` once the upstream's terminal event was seen (or an error)."""

    def __init__(self, first: StreamTranslator, second: StreamTranslator) -> None:
        self._first, self._second = first, second

    @property
    def done(self) -> bool:
        return self._first.done or self._second.done

    @property
    def complete_at_eof(self) -> bool:
        return bool(getattr(self._first, "complete_at_eof", False))

    def feed(self, name: str | None, payload: JSON) -> list[tuple[str | None, JSON]]:
        out: list[tuple[str | None, JSON]] = []
        for unified_name, chunk in self._first.feed(name, payload):
            out += self._second.feed(unified_name, chunk)
        return out

    def finish(self) -> list[tuple[str | None, JSON]]:
        out: list[tuple[str | None, JSON]] = []
        for unified_name, chunk in self._first.finish():
            out += self._second.feed(unified_name, chunk)
        return out + self._second.finish()


def wants_usage(body: JSON) -> bool:
    """Did an OpenAI-dialect client ask for the final usage chunk?"""
    options = body.get("stream_options")
    return bool(isinstance(options, dict) and options.get("include_usage"))
