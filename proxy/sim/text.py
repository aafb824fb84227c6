"""The simulator's "model": deterministic replies, tool calls and token counts.

Everything here is pure and vendor-neutral. The vendor modules turn a request body into a
:class:`Prompt`, ask :func:`respond` for a :class:`Turn`, and render it in their wire format,
so both fake vendors answer the same question with the same words and the same token counts.
Token counts are real counts of a fixed tokenizer (:func:`count_tokens`), so tests can check
usage and cost arithmetic exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import orjson

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
PER_MESSAGE_TOKENS = 3
"""Fixed framing overhead counted for every message (system prompts included)."""
PER_IMAGE_TOKENS = 85
"""Fixed cost of one image or document part, whatever its size."""

VOCAB: tuple[str, ...] = (
    "amber", "bridge", "cobalt", "delta", "ember", "fjord", "granite", "harbor",
    "island", "juniper", "kestrel", "lantern", "meadow", "nimbus", "orchard", "pebble",
    "quartz", "river", "summit", "thistle", "umber", "valley", "willow", "xenon",
    "yarrow", "zephyr", "beacon", "cedar", "dune", "estuary", "falcon", "glacier",
)  # fmt: skip
_SAY = re.compile(r"say: (.*)", re.S)
_SPACES = re.compile(r"\s+")
ECHO_WORDS = 6
TOOL_RESULT_CHARS = 200

Finish = Literal["stop", "length", "tool_calls", "stop_sequence"]


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the model reads, extracted from either vendor's request."""

    system: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    """Every non-system text: message text, tool-call names/arguments, tool results."""
    n_messages: int = 0
    n_images: int = 0
    tools_json: bytes = b""
    last_role: str = "user"
    last_user_text: str = ""
    tool_results: tuple[str, ...] = ()
    """Texts of the tool results the last message carries (empty when it carries none)."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Vendor-neutral tool_choice: ``auto``, ``any`` (required), ``none`` or ``named``."""

    mode: Literal["auto", "any", "none", "named"] = "auto"
    name: str | None = None
    parallel: bool = True


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str
    """Compact JSON object text, exactly as it goes on the wire."""


@dataclass(frozen=True, slots=True)
class Turn:
    """The model's answer: text and/or tool calls, why it stopped, and real token counts."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    finish: Finish
    stop_sequence: str | None
    prompt_tokens: int
    completion_tokens: int


def count_tokens(text: str) -> int:
    """Words and single punctuation marks; deterministic and cheap."""
    return len(TOKEN_RE.findall(text))


def prompt_tokens(prompt: Prompt) -> int:
    """Tokens of every text + tool definitions + fixed per-message and per-image costs."""
    total = sum(count_tokens(t) for t in prompt.system) + sum(count_tokens(t) for t in prompt.texts)
    if prompt.tools_json:
        total += count_tokens(prompt.tools_json.decode())
    return total + PER_MESSAGE_TOKENS * prompt.n_messages + PER_IMAGE_TOKENS * prompt.n_images


def system_tokens(prompt: Prompt) -> int:
    """The part of the prompt the fake vendors report as cached."""
    return sum(count_tokens(t) for t in prompt.system)


def split_chunks(text: str, n: int) -> list[str]:
    """Split ``text`` into at most ``n`` non-empty pieces whose concatenation is ``text``."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    cuts = [len(text) * i // n for i in range(n + 1)]
    return [text[a:b] for a, b in pairwise(cuts)]


def reply_text(user_text: str) -> str:
    """``say: XYZ`` answers ``XYZ``; anything else an echo of the prompt plus hashed words."""
    said = _SAY.search(user_text)
    if said:
        return said.group(1).strip()
    digest = hashlib.blake2b(user_text.encode(), digest_size=32).digest()
    words = [VOCAB[b % len(VOCAB)] for b in digest[1 : 9 + digest[0] % 9]]
    body = " ".join(words).capitalize() + "."
    echo = " ".join(_SPACES.sub(" ", user_text).strip().split(" ")[:ECHO_WORDS])
    return f"You said: {echo}. {body}" if echo else body


def tool_results_text(results: Sequence[str]) -> str:
    """The answer after tool results: it quotes them, so tests see they arrived."""
    quoted = "; ".join(r[:TOOL_RESULT_CHARS] for r in results)
    return f"Based on the tool results: {quoted}."


def truncate_tokens(text: str, max_tokens: int) -> tuple[str, bool]:
    """Cut after the ``max_tokens``-th token; the cut text counts exactly ``max_tokens``."""
    if max_tokens <= 0:
        return "", bool(text)
    for i, match in enumerate(TOKEN_RE.finditer(text), start=1):
        if i == max_tokens:
            end = match.end()
            return text[:end], bool(TOKEN_RE.search(text, end))
    return text, False


def apply_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """Cut before the earliest stop sequence; returns the sequence that matched."""
    best: tuple[int, str] | None = None
    for stop in stops:
        at = text.find(stop) if stop else -1
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    return (text, None) if best is None else (text[: best[0]], best[1])


def value_for(schema: Mapping[str, Any]) -> Any:
    """A deterministic value satisfying a (simple) JSON schema."""
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return value_for(schema[key][0])
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _DEFAULTS.get(kind, "sim") if kind != "object" else arguments_for(schema)


_DEFAULTS: dict[str, Any] = {
    "string": "sim",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "null": None,
}


def arguments_for(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Tool arguments: every required property of the object schema, nothing else."""
    props = schema.get("properties") or {}
    return {name: value_for(props.get(name) or {}) for name in schema.get("required") or ()}


def choose_tools(prompt: Prompt, tools: Sequence[Tool], choice: ToolChoice) -> list[Tool]:
    """Which tools the model calls: none after tool results or with ``none``; the named
    one; else the first, or the first two when the user asks for ``parallel`` calls."""
    if not tools or choice.mode == "none" or prompt.last_role != "user" or prompt.tool_results:
        return []
    if choice.mode == "named":
        return [t for t in tools if t.name == choice.name][:1]
    wants_two = "parallel" in prompt.last_user_text.lower() and choice.parallel
    return list(tools[: 2 if wants_two else 1])


def respond(
    prompt: Prompt,
    tools: Sequence[Tool] = (),
    choice: ToolChoice = ToolChoice(),
    max_tokens: int | None = None,
    stops: Sequence[str] = (),
    preface: bool = False,
) -> Turn:
    """The whole model. ``preface`` adds a sentence before tool calls (Claude's habit)."""
    called = choose_tools(prompt, tools, choice)
    calls = tuple(ToolCall(t.name, orjson.dumps(arguments_for(t.schema)).decode()) for t in called)
    if calls:
        names = " and ".join(c.name for c in calls)
        text = f"I will use {names}." if preface else ""
    elif prompt.tool_results:
        text = tool_results_text(prompt.tool_results)
    else:
        text = reply_text(prompt.last_user_text)
    finish: Finish = "tool_calls" if calls else "stop"
    text, matched = apply_stop(text, stops) if not calls else (text, None)
    if matched is not None:
        finish = "stop_sequence"
    if max_tokens is not None and not calls:
        text, cut = truncate_tokens(text, max_tokens)
        if cut:
            finish, matched = "length", None
    completion = count_tokens(text) + sum(count_tokens(c.arguments) for c in calls)
    return Turn(text, calls, finish, matched, prompt_tokens(prompt), completion)
