"""What OpenAI-wire vendors other than OpenAI send, made into valid unified Chat Completions.

Azure OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp, DeepSeek, ...) speak the
OpenAI wire, but not always to the letter (MAPPING.md §8): Azure opens a stream with a chunk
whose ``choices`` is empty and whose ``id``/``model`` are ``""`` and ``created`` 0 (it carries
``prompt_filter_results``); compatible servers may omit ``created``, ``object`` or even ``id``.
These pure functions fill what is missing and keep every extra field (``prompt_filter_results``,
``content_filter_results``, ``reasoning_content``) for OpenAI-dialect clients.
"""

from __future__ import annotations

import secrets
from typing import Any

JSON = dict[str, Any]
Out = list[tuple[str | None, JSON]]


def gateway_id(prefix: str = "chatcmpl-") -> str:
    """An id for a response whose upstream gave none."""
    return prefix + secrets.token_hex(12)


def normalise_response(response: JSON, created: int) -> JSON:
    """A ``chat.completion`` with the fields the OpenAI SDKs require (in place; returned)."""
    if not response.get("id"):
        response["id"] = gateway_id()
    if not response.get("object"):
        response["object"] = "chat.completion"
    if not isinstance(response.get("created"), int) or not response["created"]:
        response["created"] = created
    return response


class WireStream:
    """An OpenAI-wire stream made valid, chunk by chunk (a :class:`StreamTranslator`).

    A leading chunk with no choices and no usage (Azure's prompt-filter annotation) is held
    until the first real chunk, then sent with that chunk's ``id``, ``created`` and ``model``:
    it carries no content, so holding it delays nothing a client shows. Every chunk gets the
    stream's ``id``, ``object`` and ``created`` when the upstream left them out.
    """

    def __init__(self, created: int) -> None:
        self._created = created
        self._id = ""
        self._model = ""
        self._held: list[JSON] = []
        self._started = False
        self._whole = False  # the first real chunk had id, object, created and model
        self.done = False

    def feed(self, name: str | None, payload: JSON) -> Out:
        if self.done:
            return []
        if "error" in payload:
            self.done, self._held = True, []  # an annotation of a prompt that then failed
            return [(None, payload)]
        if not self._started:
            if not payload.get("choices") and not payload.get("usage"):
                self._held.append(payload)
                return []
            self._start(payload)
        return [*self._release(), (None, self._fill(payload))]

    def accepts_raw(self, data: bytes) -> bool:
        """Whether the stream's first chunk, unparsed, shows a server that needs no repair:
        choices, a non-empty ``id`` and ``model``, ``object`` and a non-zero ``created``. The
        relay then passes the whole stream through as bytes. Judged on the bytes (a quote
        inside a JSON string is escaped, so these patterns are keys); a server writing spaces
        after its colons fails the test and is simply parsed."""
        return (
            not self._started
            and not self._held
            and b'"choices":[{' in data
            and b'"object":"chat.completion.chunk"' in data
            and b'"created":' in data
            and b'"created":0' not in data
            and b'"model":"' in data
            and b'"model":""' not in data
            and b'"id":"' in data
            and b'"id":""' not in data
        )

    @property
    def settled(self) -> bool:
        """Nothing left to repair: the first real chunk had every field, and a server writes
        every chunk with one serialiser, so the relay may drop this translator and pass the
        rest through unparsed, as for OpenAI itself."""
        return self._whole and not self._held

    def finish(self) -> Out:
        self.done = True
        if self._held and not self._started:
            self._start({})
        return self._release()

    def _start(self, first: JSON) -> None:
        self._started = True
        self._id = str(first.get("id") or "") or gateway_id()
        self._model = str(first.get("model") or "")
        created = first.get("created")
        if isinstance(created, int) and created:
            self._created = created
        fields = first.get("id") and first.get("object") and first.get("model")
        self._whole = bool(fields) and isinstance(created, int) and created > 0

    def _release(self) -> Out:
        held, self._held = self._held, []
        out: Out = []
        for chunk in held:
            chunk.update(id=self._id, created=self._created, object="chat.completion.chunk")
            if not chunk.get("model"):
                chunk["model"] = self._model
            out.append((None, chunk))
        return out

    def _fill(self, chunk: JSON) -> JSON:
        if not chunk.get("id"):
            chunk["id"] = self._id
        if not chunk.get("object"):
            chunk["object"] = "chat.completion.chunk"
        if not isinstance(chunk.get("created"), int) or not chunk["created"]:
            chunk["created"] = self._created
        if "model" not in chunk:
            chunk["model"] = self._model
        return chunk
