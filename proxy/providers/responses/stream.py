"""Unified (Chat Completions) stream chunks as the Responses API's event sequence.

``response.created``, ``response.in_progress``; per output item ``response.output_item.added``,
then for a message ``response.content_part.added``, ``response.output_text.delta``...,
``response.output_text.done``, ``response.content_part.done``, or for a function call
``response.function_call_arguments.delta``..., ``.done``; then ``response.output_item.done``;
finally ``response.completed`` (or ``response.incomplete``) with the whole response and its
usage. Every event has the next ``sequence_number`` (from 0); item ids follow
:mod:`.response`, so the final response's items are the ones the stream announced.
"""

from __future__ import annotations

from typing import Any

from proxy.providers.responses.response import (
    base_id,
    call_item,
    message_item,
    resource,
    responses_usage,
    status_of,
)

JSON = dict[str, Any]
Events = list[tuple[str | None, JSON]]


class _Text:
    def __init__(self, index: int, item_id: str) -> None:
        self.index, self.item_id, self.text = index, item_id, ""


class _Call:
    def __init__(self, index: int, item: JSON) -> None:
        self.index, self.item = index, item


class UnifiedToResponsesStream:
    """One stream's state: the output items so far, the open ones, the next sequence number."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False
        self._seq = 0
        self._stem = ""
        self._created = 0
        self._output: list[JSON] = []
        self._text: _Text | None = None
        self._calls: dict[int, _Call] = {}
        self._open_calls: list[_Call] = []
        self._status: str | None = None
        self._usage: JSON | None = None
        self._out: Events = []

    def feed(self, name: str | None, chunk: JSON) -> Events:
        self._out = []
        if self.done:
            return []
        if "error" in chunk:
            self._error(chunk["error"])
            return self._out
        if not self._stem:
            self._start(chunk)
        for choice in chunk.get("choices") or ():
            self._choice(choice)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
            if self._status is not None:
                self._complete()
        return self._out

    def finish(self) -> Events:
        self._out = []
        if not self.done:
            if not self._stem:
                self._start({})
            self._close_items()
            self._complete()
        return self._out

    # --- events ---------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        self._out.append((kind, {"type": kind, "sequence_number": self._seq, **fields}))
        self._seq += 1

    def _start(self, chunk: JSON) -> None:
        self._stem = base_id(chunk.get("id"))
        self._created = int(chunk.get("created") or 0)
        self.model = str(chunk.get("model") or self.model)
        for kind in ("response.created", "response.in_progress"):
            self._emit(kind, response=self._resource("in_progress", [], None))

    def _resource(self, status: str, output: list[JSON], usage: JSON | None) -> JSON:
        return resource(self._stem, self._created, self.model, status, output, usage)

    def _choice(self, choice: JSON) -> None:
        delta = choice.get("delta") or {}
        text = delta.get("content") or delta.get("refusal")
        if isinstance(text, str) and text:
            self._text_delta(text)
        for call in delta.get("tool_calls") or ():
            self._call_delta(call)
        if choice.get("finish_reason") is not None:
            self._status = status_of(choice["finish_reason"])
            self._close_items()

    def _text_delta(self, text: str) -> None:
        if self._text is None:
            self._close_calls()
            index = len(self._output)
            stem = self._stem if index == 0 else f"{self._stem}_{index}"
            item = message_item(stem, "", "in_progress")
            self._output.append(item)
            self._text = _Text(index, item["id"])
            self._emit("response.output_item.added", output_index=index, item=item)
            self._emit(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=_part(""),
            )
        self._text.text += text
        self._emit(
            "response.output_text.delta",
            item_id=self._text.item_id,
            output_index=self._text.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call_delta(self, delta: JSON) -> None:
        position = int(delta.get("index") or 0)
        function = delta.get("function") or {}
        call = self._calls.get(position)
        if call is None:
            self._close_items()  # one item at a time, as OpenAI streams them
            index = len(self._output)
            call_id = str(delta.get("id") or f"call_{self._stem}_{position}")
            name = str(function.get("name") or "")
            item = call_item(self._stem, position, call_id, name, "", "in_progress")
            self._output.append(item)
            call = self._calls[position] = _Call(index, item)
            self._open_calls.append(call)
            self._emit("response.output_item.added", output_index=index, item=dict(item))
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            call.item["arguments"] += piece
            self._emit(
                "response.function_call_arguments.delta",
                item_id=call.item["id"],
                output_index=call.index,
                delta=piece,
            )

    def _close_text(self) -> None:
        text, self._text = self._text, None
        if text is None:
            return
        item = message_item(self._output[text.index]["id"][4:], text.text, "completed")
        self._output[text.index] = item
        where = {"item_id": text.item_id, "output_index": text.index, "content_index": 0}
        self._emit("response.output_text.done", **where, text=text.text, logprobs=[])
        self._emit("response.content_part.done", **where, part=_part(text.text))
        self._emit("response.output_item.done", output_index=text.index, item=item)

    def _close_calls(self) -> None:
        for call in self._open_calls:
            item = call.item
            item["status"] = "completed"
            self._emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=call.index,
                name=item["name"],
                arguments=item["arguments"],
            )
            self._emit("response.output_item.done", output_index=call.index, item=dict(item))
        self._open_calls = []

    def _close_items(self) -> None:
        self._close_text()
        self._close_calls()

    def _complete(self) -> None:
        status = self._status or "completed"
        usage = responses_usage(self._usage) if self._usage is not None else None
        final = self._resource(status, self._output, usage)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        self._emit(kind, response=final)
        self.done = True

    def _error(self, error: Any) -> None:
        """A unified error chunk as the Responses ``error`` event; its ``error`` object (the
        contract's type) also makes the OpenAI SDK raise instead of ending quietly."""
        error = error if isinstance(error, dict) else {"message": str(error)}
        kind = str(error.get("type") or "provider_error")
        self._emit(
            "error",
            code=str(error.get("code") or kind),
            message=str(error.get("message") or "The upstream failed."),
            param=error.get("param"),
            error={**error, "type": kind},
        )
        self.done = True


# OpenAI's in-stream error types and codes -> the contract's (anything else: provider_error).
_CONTRACT_TYPES = {
    "invalid_request_error": "invalid_request",
    "invalid_prompt": "invalid_request",
    "context_length_exceeded": "invalid_request",
    "authentication_error": "invalid_api_key",
    "invalid_api_key": "invalid_api_key",
    "rate_limit_exceeded": "rate_limit_exceeded",
    "insufficient_quota": "rate_limit_exceeded",
    "model_not_found": "model_not_found",
}


def contract_error_event(event: JSON, sequence_number: int) -> JSON:
    """A passed-through ``error`` event with its ``error`` object in the contract's terms (the
    vendor's own code kept), as every error a client of the gateway sees, numbered in the
    stream the client got."""
    inner = event.get("error") if isinstance(event.get("error"), dict) else {}
    code = event.get("code") or inner.get("code") or inner.get("type")
    kind = _CONTRACT_TYPES.get(str(inner.get("type")), _CONTRACT_TYPES.get(str(code)))
    return {
        **event,
        "sequence_number": sequence_number,
        "error": {
            "message": str(event.get("message") or inner.get("message") or "The upstream failed."),
            "type": kind or "provider_error",
            "code": None if code is None else str(code),
            "param": event.get("param", inner.get("param")),
        },
    }


def _part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
