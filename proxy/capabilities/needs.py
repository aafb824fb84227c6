"""What a request needs from its model, read from the client's body in its own dialect.

One small reader per dialect, registered in ``READERS``; a new dialect (the Responses API, ...)
adds its reader with :func:`register`. Readers are pure and cheap: one pass over the messages.

The input-token estimate is deliberately low (text characters / 6, images and tool schemas
not counted): a prompt is refused only when even this under-count cannot fit, so a prompt that
fits is never refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 6
"""Above any tokenizer's average for natural text (3-4.5), so the estimate stays low."""


@dataclass(slots=True)
class Needs:
    tools: bool = False
    vision: bool = False
    json_schema: bool = False
    streaming: bool = False
    system_prompt: bool = False
    reasoning: bool = False
    max_tokens: int | None = None
    text_chars: int = 0
    """Characters of message text (the basis of the token estimate)."""

    @property
    def input_tokens(self) -> int:
        return self.text_chars // CHARS_PER_TOKEN


Reader = Callable[[dict[str, Any]], Needs]
READERS: dict[str, Reader] = {}


def register(dialect: str, reader: Reader) -> None:
    READERS[dialect] = reader


def needs_of(dialect: str, body: dict[str, Any]) -> Needs | None:
    """The request's needs, or None for a dialect without a reader (nothing is checked)."""
    reader = READERS.get(dialect)
    return reader(body) if reader is not None else None


def _limit(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- OpenAI Chat Completions ----------------------------------------------------------------

_OPENAI_IMAGES = frozenset(("image_url", "file"))


def openai_needs(body: dict[str, Any]) -> Needs:
    needs = Needs(
        tools=bool(body.get("tools") or body.get("functions")),
        streaming=bool(body.get("stream")),
        reasoning=body.get("reasoning_effort") is not None,
        max_tokens=_limit(body.get("max_completion_tokens")) or _limit(body.get("max_tokens")),
    )
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        needs.json_schema = response_format.get("type") == "json_schema"
    chars = 0
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        if message.get("role") in ("system", "developer"):
            needs.system_prompt = True
        chars += _content(message.get("content"), needs, _OPENAI_IMAGES)
    needs.text_chars = chars
    return needs


# --- Anthropic Messages ---------------------------------------------------------------------

_ANTHROPIC_IMAGES = frozenset(("image", "document"))


def anthropic_needs(body: dict[str, Any]) -> Needs:
    thinking = body.get("thinking")
    system = body.get("system")
    needs = Needs(
        tools=bool(body.get("tools")),
        streaming=bool(body.get("stream")),
        reasoning=isinstance(thinking, dict) and thinking.get("type") == "enabled",
        system_prompt=bool(system),
        max_tokens=_limit(body.get("max_tokens")),
    )
    chars = _content(system, needs, _ANTHROPIC_IMAGES)
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            chars += _content(message.get("content"), needs, _ANTHROPIC_IMAGES)
    needs.text_chars = chars
    return needs


def _content(content: Any, needs: Needs, images: frozenset[str]) -> int:
    """Text characters of a message's content: a string or a list of parts."""
    if isinstance(content, str):
        return len(content)
    return _parts(content, needs, images) if isinstance(content, list) else 0


def _parts(parts: Iterable[Any], needs: Needs, images: frozenset[str]) -> int:
    """Text characters of content parts; marks ``vision`` on an image (nested ones too)."""
    chars = 0
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in images:
            needs.vision = True
        text = part.get("text")
        if isinstance(text, str):
            chars += len(text)
        chars += _content(part.get("content"), needs, images)  # a tool_result's own blocks
    return chars


# --- OpenAI Responses API -------------------------------------------------------------------

_RESPONSES_IMAGES = frozenset(("input_image", "input_file"))


def responses_needs(body: dict[str, Any]) -> Needs:
    text = body.get("text")
    spec = text.get("format") if isinstance(text, dict) else None
    reasoning = body.get("reasoning")
    instructions = body.get("instructions")
    needs = Needs(
        tools=bool(body.get("tools")),
        streaming=bool(body.get("stream")),
        reasoning=isinstance(reasoning, dict) and reasoning.get("effort") is not None,
        json_schema=isinstance(spec, dict) and spec.get("type") == "json_schema",
        system_prompt=bool(instructions),
        max_tokens=_limit(body.get("max_output_tokens")),
    )
    given = body.get("input")
    chars = _content(instructions, needs, _RESPONSES_IMAGES)
    for item in given if isinstance(given, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("role") in ("system", "developer"):
            needs.system_prompt = True
        chars += _content(item.get("content"), needs, _RESPONSES_IMAGES)
        chars += _content(item.get("output"), needs, _RESPONSES_IMAGES)  # function_call_output
    needs.text_chars = chars + (len(given) if isinstance(given, str) else 0)
    return needs


register("openai", openai_needs)
register("anthropic", anthropic_needs)
register("responses", responses_needs)
