"""A live stream, accumulated into the unified answer it amounts to, for storing once it ended.

The relay hands every upstream event to the capture (its ``tap``) before translating it; the
capture turns the vendor's events into unified chunks and folds them into one
``chat.completion``: text and refusals concatenated, tool-call fragments joined per call,
finish reasons and usage kept. Only a stream that reached its terminal event without an error
yields an answer.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.engine.route import Target
from proxy.providers.base import StreamTranslator
from proxy.sse import Event

JSON = dict[str, Any]
_BASE_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


class StreamCapture:
    def __init__(self, target: Target, created: int) -> None:
        self.target = target  # the attempt's target: the answer is stored as its
        self._translator: StreamTranslator | None = target.vendor.stream_to_unified(created)
        self._base: JSON = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: JSON | None = None
        self.complete = False
        self.broken = False

    def __call__(self, event: Event) -> None:
        """One upstream event (the relay's tap)."""
        if self.complete or self.broken:
            return
        if event.data == b"[DONE]":  # the OpenAI wire's end, repaired (Azure's) or not
            self._finish()
            return
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            self.broken = True
            return
        if not isinstance(payload, dict):
            return
        if self._translator is None:
            self.add(payload)
            return
        for _, chunk in self._translator.feed(event.name, payload):
            self.add(chunk)
        if self._translator.done and not self.broken:
            self._finish()

    def _finish(self) -> None:
        """The upstream's terminal event: fold in what its translator still owed."""
        if self._translator is not None:
            for _, chunk in self._translator.finish():
                self.add(chunk)
        self.complete = not self.broken

    def add(self, chunk: JSON) -> None:
        """Fold one unified ``chat.completion.chunk`` in."""
        if "error" in chunk:
            self.broken = True
            return
        if not self._base:
            self._base = {k: chunk[k] for k in _BASE_FIELDS if chunk.get(k) is not None}
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            acc = self._choices.get(index)
            if acc is None:
                acc = self._choices[index] = _Choice()
            acc.add(choice)

    def completion(self, ended: bool = False) -> JSON | None:
        """The answer, once the stream completed cleanly; else None. ``ended``: the relay saw
        the stream end cleanly (its translator may finish before the wire's last event, and a
        wire may end at EOF), which makes it complete unless something broke."""
        if ended and not self.complete and not self.broken:
            self._finish()
        if not self.complete or self.broken or not self._choices:
            return None
        out: JSON = {
            "id": self._base.get("id", ""),
            "object": "chat.completion",
            "created": self._base.get("created", 0),
            "model": self._base.get("model", ""),
            "choices": [self._choices[i].result(i) for i in sorted(self._choices)],
        }
        for key in ("system_fingerprint", "service_tier"):
            if key in self._base:
                out[key] = self._base[key]
        if self._usage is not None:
            out["usage"] = self._usage
        return out


class _Choice:
    __slots__ = ("calls", "content", "finish", "logprobs", "refusal", "role")

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, JSON] = {}
        self.finish: str | None = None
        self.logprobs: JSON | None = None

    def add(self, choice: JSON) -> None:
        delta = choice.get("delta") or {}
        if delta.get("role"):
            self.role = delta["role"]
        if delta.get("content"):
            self.content.append(delta["content"])
        if delta.get("refusal"):
            self.refusal.append(delta["refusal"])
        for call in delta.get("tool_calls") or ():
            self._add_call(call)
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            kept = self.logprobs = self.logprobs or {}
            for part, items in logprobs.items():
                if isinstance(items, list):
                    kept.setdefault(part, []).extend(items)

    def _add_call(self, call: JSON) -> None:
        index = int(call.get("index") or 0)
        acc = self.calls.get(index)
        if acc is None:
            acc = self.calls[index] = {"id": None, "type": "function", "name": "", "args": []}
        for field in ("id", "type"):
            if call.get(field):
                acc[field] = call[field]
        function = call.get("function") or {}
        if function.get("name"):
            acc["name"] += function["name"]
        if function.get("arguments"):
            acc["args"].append(function["arguments"])

    def result(self, index: int) -> JSON:
        message: JSON = {"role": self.role}
        calls = [
            {
                "id": c["id"],
                "type": c["type"],
                "function": {"name": c["name"], "arguments": "".join(c["args"])},
            }
            for _, c in sorted(self.calls.items())
        ]
        message["content"] = "".join(self.content) if self.content or not calls else None
        message["refusal"] = "".join(self.refusal) if self.refusal else None
        if calls:
            message["tool_calls"] = calls
        return {
            "index": index,
            "message": message,
            "logprobs": self.logprobs,
            "finish_reason": self.finish,
        }
