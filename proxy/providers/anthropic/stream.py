"""Stream translators between Anthropic's named SSE events and OpenAI chunks (MAPPING §5).

Both are incremental: every upstream event is answered at once with what it already allows
(a text delta goes out the moment it arrives), so the gateway adds no buffering latency. Both
expose ``done``, true once the upstream's terminal event (or an error) was seen, so the engine
can tell a finished stream from a cut one.
"""

from __future__ import annotations

from typing import Any

from proxy.pricing import Usage, unknown_usage
from proxy.providers.anthropic.errors import error_event_to_gateway, openai_stream_error_to_gateway
from proxy.providers.anthropic.response import (
    anthropic_usage,
    finish_reason,
    openai_usage,
    reasoning_text,
)
from proxy.providers.anthropic.response import stop_reason as to_stop_reason

JSON = dict[str, Any]
Out = list[tuple[str | None, JSON]]


class AnthropicToOpenAIStream:
    """Anthropic events in, OpenAI ``chat.completion.chunk`` payloads out (event name None).

    Tool calls get OpenAI indices counted over tool blocks only (Anthropic's block index also
    counts text blocks). After the finish chunk comes a usage chunk (``choices: []``), always:
    the engine drops it when the client did not ask for ``include_usage``.
    """

    def __init__(self, created: int) -> None:
        self._created = created
        self._id = ""
        self._model = ""
        self._usage: JSON = {}
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool-call index
        self.done = False

    def feed(self, name: str | None, payload: JSON) -> Out:
        if self.done:
            return []
        kind = payload.get("type") or name
        if kind == "message_start":
            return self._start(payload.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "content_block_delta":
            return self._block_delta(payload)
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "message_stop":
            self.done = True
        elif kind == "error":
            self.done = True
            return [(None, error_event_to_gateway(payload).openai_body())]
        return []  # ping, content_block_stop, and event types added after this was written

    def finish(self) -> Out:
        return []

    def _start(self, message: JSON) -> Out:
        self._id = str(message.get("id") or "")
        self._model = str(message.get("model") or "")
        self._usage = dict(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, payload: JSON) -> Out:
        block = payload.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []  # thinking and server-tool blocks have no Chat Completions field
        index = self._tools[payload.get("index", -1)] = len(self._tools)
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: JSON) -> Out:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        index = self._tools.get(payload.get("index", -1))
        if kind == "input_json_delta" and index is not None and delta.get("partial_json"):
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _message_delta(self, payload: JSON) -> Out:
        usage = payload.get("usage") or {}
        self._usage.update({key: value for key, value in usage.items() if value is not None})
        reason = finish_reason((payload.get("delta") or {}).get("stop_reason"))
        # No counts in the delta: the usage is unknown, never message_start's partial counts.
        known = Usage.read_anthropic(usage) is not None
        counts = openai_usage(self._usage) if known else unknown_usage("openai")
        usage_chunk = {**self._base(), "choices": [], "usage": counts}
        return [self._chunk({}, reason), (None, usage_chunk)]

    def _base(self) -> JSON:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _chunk(self, delta: JSON, finish: str | None = None) -> tuple[None, JSON]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return None, {**self._base(), "choices": [choice], "usage": None}


class OpenAIToAnthropicStream:
    """OpenAI chunks in (name None), Anthropic named events out.

    One content block is open at a time: text opens on the first non-empty content and closes
    before each new tool call. ``message_delta`` waits for the usage chunk, which OpenAI sends
    after the finish chunk, or for ``finish()`` at ``[DONE]``.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._open: int | None = None  # index of the open block
        self._open_kind: str | None = None  # "text" or "thinking" while one of those is open
        self._next = 0
        self._tools: dict[int, int] = {}  # OpenAI tool-call index -> Anthropic block index
        self._finish: str | None = None
        self._usage: JSON | None = None
        self.done = False

    def feed(self, name: str | None, payload: JSON) -> Out:
        if self.done:
            return []
        if "error" in payload:
            self.done = True
            return [("error", openai_stream_error_to_gateway(payload["error"]).anthropic_body())]
        out: Out = [] if self._started else [self._message_start(payload)]
        for choice in payload.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            out += self._delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                out += self._close()
        if payload.get("usage"):
            self._usage = payload["usage"]
        if self._finish is not None and self._usage is not None:
            out += self._end()
        return out

    def finish(self) -> Out:
        if self.done or not self._started:
            return []
        return self._close() + self._end()

    def _message_start(self, chunk: JSON) -> tuple[str, JSON]:
        self._started = True
        message = {
            "id": str(chunk.get("id") or "msg_gateway"),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return "message_start", {"type": "message_start", "message": message}

    def _delta(self, delta: JSON) -> Out:
        out: Out = []
        thought = reasoning_text(delta)
        if thought:
            if self._open_kind != "thinking":
                block = {"type": "thinking", "thinking": "", "signature": ""}
                out += [*self._close(), self._start_block(block)]
                self._open_kind = "thinking"
            out.append(
                self._block_delta({"type": "thinking_delta", "thinking": thought}, self._open)
            )
        text = delta.get("content") or delta.get("refusal")
        if isinstance(text, str) and text:
            if self._open_kind != "text":
                out += [*self._close(), self._start_block({"type": "text", "text": ""})]
                self._open_kind = "text"
            out.append(self._block_delta({"type": "text_delta", "text": text}, self._open))
        calls = list(delta.get("tool_calls") or [])
        if isinstance(delta.get("function_call"), dict):  # legacy: one call, no id
            calls.append({"index": 0, "id": "toolu_legacy_0", "function": delta["function_call"]})
        for call in calls:
            if isinstance(call, dict):
                out += self._tool_delta(call)
        return out

    def _tool_delta(self, call: JSON) -> Out:
        out: Out = []
        fn = call.get("function") or {}
        index = call.get("index", 0)
        if index not in self._tools:
            out += self._close()
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{index}"),
                "name": str(fn.get("name") or ""),
                "input": {},
            }
            out.append(self._start_block(block))
            self._tools[index] = self._open
        if fn.get("arguments"):
            delta = {"type": "input_json_delta", "partial_json": fn["arguments"]}
            out.append(self._block_delta(delta, self._tools[index]))
        return out

    def _start_block(self, block: JSON) -> tuple[str, JSON]:
        self._open, self._next = self._next, self._next + 1
        self._open_kind = None
        payload = {"type": "content_block_start", "index": self._open, "content_block": block}
        return "content_block_start", payload

    @staticmethod
    def _block_delta(delta: JSON, index: int | None) -> tuple[str, JSON]:
        return "content_block_delta", {
            "type": "content_block_delta",
            "index": index,
            "delta": delta,
        }

    def _close(self) -> Out:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _end(self) -> Out:
        self.done = True
        reason = to_stop_reason(self._finish)
        if self._tools and reason == "end_turn":
            reason = "tool_use"
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": None},
            "usage": (  # no usage, or one with null counts (unknown upstream of us): unknown
                unknown_usage("anthropic")
                if Usage.read_openai(self._usage) is None
                else anthropic_usage(self._usage)
            ),
        }
        return [("message_delta", delta), ("message_stop", {"type": "message_stop"})]
