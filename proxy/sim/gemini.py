"""The fake Gemini (AI Studio ``v1beta``), strict where the live API is strict (MAPPING §7).

Shapes follow the kit's ``samples/gemini/``. The model is in the URL; ``?alt=sse`` streams
bare ``data:`` events with only the new parts and no terminal event. Besides the request
schema the fake refuses what the live API refuses: empty text parts, function responses that
do not match the calls of the model turn before them, and (Gemini 3 models) a model turn's
first function call without the ``thoughtSignature`` the fake issued for it. Its answers
carry a signature on the first call so a gateway's round trip is proven end to end.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from proxy.sim import text
from proxy.sim.faults import JSON_TYPE, SSE_TYPE, Reply, error_reply
from proxy.sim.openai import SIM_PREFIX
from proxy.sim.text import Prompt, Tool, ToolChoice, Turn
from proxy.sse import encode_data

NAME = "gemini"
STREAM_ERROR_STATUS = 503
INVALID_JSON = "Invalid JSON payload received."
MODELS = frozenset(
    {"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-2.0-flash"}
    | {"gemini-3-pro-preview", "gemini-3-flash-preview"}
)
FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
BLOCK_PROMPT = "[sim: block]"
"""A prompt containing this is blocked (HTTP 200, no candidates, ``PROHIBITED_CONTENT``)."""
THOUGHT_TOKENS = 12
"""Thinking tokens a ``pro`` model reports (billed as output)."""
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error(status: int, message: str, details: Sequence[Any] = ()) -> Reply:
    body: dict[str, Any] = {
        "error": {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
    }
    if details:
        body["error"]["details"] = list(details)
    return error_reply(NAME, status, body=body)


def bad_request(message: str, param: str | None = None) -> Reply:
    return google_error(400, message)


def authorize(headers: Mapping[str, str], key: str | None) -> Reply | None:
    if key is None:
        return None
    given = headers.get("x-goog-api-key")
    if not given:
        return google_error(403, "Method doesn't allow unregistered callers. Please use API Key.")
    return None if given == key else error_reply(NAME, 400, sample="400")


def known_model(model: str, extra: frozenset[str]) -> bool:
    return model in MODELS or model in extra or model.startswith(SIM_PREFIX)


def route_args(path: str, query: Mapping[str, str]) -> dict[str, Any]:
    """``.../models/{model}:generateContent`` or ``:streamGenerateContent?alt=sse``."""
    tail = path.rsplit("/models/", 1)[-1]
    model, _, verb = tail.partition(":")
    return {"model": model, "stream": verb == "streamGenerateContent", "sse": query.get("alt")}


def signature(name: str, args: Any) -> str:
    """The opaque ``thoughtSignature`` the fake gives a call (and expects back verbatim)."""
    digest = hashlib.sha256(b"sim-thought\x00" + name.encode() + orjson.dumps(args)).digest()
    return base64.b64encode(digest + b"\x01sig").decode()


# --- request -> Prompt -------------------------------------------------------------------------


def _read_parts(parts: Sequence[Any], texts: list[str], results: list[str]) -> int:
    images = 0
    for part in parts:
        if "text" in part:
            texts.append(part["text"])
        elif "functionCall" in part:
            call = part["functionCall"]
            texts += [call["name"], orjson.dumps(call.get("args") or {}).decode()]
        elif "functionResponse" in part:
            results.append(orjson.dumps(part["functionResponse"].get("response") or {}).decode())
        elif "inlineData" in part or "fileData" in part:
            images += 1
    return images


def parse_prompt(body: Mapping[str, Any]) -> Prompt:
    system = body.get("systemInstruction") or {}
    system_texts = [p["text"] for p in system.get("parts") or () if "text" in p]
    contents = body["contents"]
    texts: list[str] = []
    images = 0
    last_user = ""
    results: list[str] = []
    for content in contents:
        own: list[str] = []
        results = []
        images += _read_parts(content.get("parts") or (), own, results)
        texts += own + results
        if content.get("role", "user") == "user" and own:
            last_user = "\n".join(own)
    last_role = "user" if contents[-1].get("role", "user") == "user" else "assistant"
    return Prompt(
        system=tuple(system_texts),
        texts=tuple(texts),
        n_messages=len(contents) + (1 if system_texts else 0),
        n_images=images,
        tools_json=orjson.dumps(body["tools"]) if body.get("tools") else b"",
        last_role=last_role,
        last_user_text=last_user,
        tool_results=tuple(results) if last_role == "user" else (),
    )


def _parameters(declaration: Mapping[str, Any]) -> Mapping[str, Any]:
    """The declaration's schema; the live API (and google-genai) also take snake_case."""
    for name in ("parametersJsonSchema", "parameters_json_schema", "parameters"):
        if declaration.get(name):
            return declaration[name]
    return {}


def parse_tools(body: Mapping[str, Any]) -> tuple[list[Tool], ToolChoice]:
    tools = [
        Tool(d["name"], _parameters(d))
        for tool in body.get("tools") or ()
        for d in tool.get("functionDeclarations") or ()
    ]
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    allowed = config.get("allowedFunctionNames") or []
    if mode == "ANY" and len(allowed) == 1:
        return tools, ToolChoice("named", allowed[0])
    return tools, ToolChoice({"ANY": "any", "NONE": "none"}.get(mode, "auto"))  # type: ignore[arg-type]


def strict_problem(body: Mapping[str, Any], model: str, with_ids: bool) -> str | None:
    """What the live API would refuse beyond the schema (None: nothing)."""
    system = body.get("systemInstruction") or {}
    previous_calls = 0
    for content in [system, *body["contents"]]:
        parts = content.get("parts") or []
        if content is not system and not parts:
            return "contents.parts must not be empty."
        if any(p.get("text") == "" for p in parts):
            return "Unable to submit request because it has an empty text parameter."
        calls = [p for p in parts if "functionCall" in p]
        answers = [p for p in parts if "functionResponse" in p]
        if not with_ids and any("id" in p.get("functionCall", p.get("functionResponse", {}))
                                for p in calls + answers):  # fmt: skip
            return 'Invalid JSON payload received. Unknown name "id": Cannot find field.'
        if answers and len(answers) != previous_calls:
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        if calls and model.startswith("gemini-3"):
            first = calls[0]
            expected = signature(first["functionCall"]["name"], first["functionCall"].get("args"))
            if first.get("thoughtSignature") != expected:
                return "Function call is missing a thought_signature in functionCall parts."
        previous_calls = len(calls) if content.get("role") == "model" else 0
    return None


# --- Turn -> wire ------------------------------------------------------------------------------


def usage(turn: Turn, model: str, final: bool = True) -> dict[str, Any]:
    thoughts = THOUGHT_TOKENS if "pro" in model else 0
    meta: dict[str, Any] = {"promptTokenCount": turn.prompt_tokens}
    if final:
        meta["candidatesTokenCount"] = turn.completion_tokens
        if thoughts:
            meta["thoughtsTokenCount"] = thoughts
    output = turn.completion_tokens + thoughts if final else 0
    meta["totalTokenCount"] = turn.prompt_tokens + output
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": turn.prompt_tokens}]
    return meta


def parts_of(turn: Turn) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": turn.text}] if turn.text else []
    for index, call in enumerate(turn.tool_calls):
        args = orjson.loads(call.arguments)
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
        if index == 0:
            part["thoughtSignature"] = signature(call.name, args)
        parts.append(part)
    return parts


def response(turn: Turn, model: str, response_id: str) -> dict[str, Any]:
    parts = parts_of(turn) or [{"text": ""}]
    candidate = {
        "content": {"parts": parts, "role": "model"},
        "finishReason": FINISH[turn.finish],
        "index": 0,
    }
    return {
        "candidates": [candidate],
        "usageMetadata": usage(turn, model),
        "modelVersion": model,
        "responseId": response_id,
    }


def stream_events(turn: Turn, model: str, response_id: str, n_chunks: int) -> list[bytes]:
    """Text pieces (partial usage on each), calls in one event, the last with finishReason."""
    pieces: list[list[dict[str, Any]]] = [
        [{"text": piece}] for piece in text.split_chunks(turn.text, n_chunks)
    ] if turn.text else []  # fmt: skip
    calls = [p for p in parts_of(turn) if "functionCall" in p]
    if calls:
        pieces.append(calls)
    if not pieces:
        pieces.append([{"text": ""}])
    events = []
    for number, parts in enumerate(pieces):
        last = number == len(pieces) - 1
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = FINISH[turn.finish]
        event = {
            "candidates": [candidate],
            "usageMetadata": usage(turn, model, final=last),
            "modelVersion": model,
            "responseId": response_id,
        }
        events.append(encode_data(event))
    return events


def stream_error_event() -> bytes:
    error = {"code": 503, "message": "The model is overloaded. Please try again later.",
             "status": "UNAVAILABLE"}  # fmt: skip
    return encode_data({"error": error})


# --- the endpoint ------------------------------------------------------------------------------


def answer(
    body: Mapping[str, Any],
    *,
    n_chunks: int,
    extra_models: frozenset[str],
    model: str = "",
    stream: bool = False,
    sse: str | None = None,
    with_ids: bool = True,
) -> Reply:
    """POST ``models/{model}:generateContent`` after auth and schema validation."""
    if not known_model(model, extra_models):
        return google_error(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
        )
    if stream and sse != "sse":
        return bad_request("The fake streams only with alt=sse.")
    if "contents" not in body or not body["contents"]:
        return bad_request("* GenerateContentRequest.contents: contents is not specified")
    problem = strict_problem(body, model, with_ids)
    if problem is not None:
        return bad_request(problem)
    config = body.get("generationConfig") or {}
    prompt = parse_prompt(body)
    tools, choice = parse_tools(body)
    turn = text.respond(
        prompt, tools, choice, config.get("maxOutputTokens"), config.get("stopSequences") or ()
    )
    response_id = secrets.token_urlsafe(16)
    if BLOCK_PROMPT in prompt.last_user_text:
        return _blocked(turn, model, response_id, stream)
    if not stream:
        body = orjson.dumps(response(turn, model, response_id))
        return Reply(200, {"content-type": JSON_TYPE}, body)
    events = stream_events(turn, model, response_id, n_chunks)
    headers = {"content-type": SSE_TYPE, "cache-control": "no-cache"}
    return Reply(200, headers, events=events, error_event=stream_error_event())


def _blocked(turn: Turn, model: str, response_id: str, stream: bool) -> Reply:
    body = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": turn.prompt_tokens},
        "modelVersion": model,
        "responseId": response_id,
    }
    if not stream:
        return Reply(200, {"content-type": JSON_TYPE}, orjson.dumps(body))
    return Reply(200, {"content-type": SSE_TYPE}, events=[encode_data(body)])


def models_reply(extra_models: frozenset[str]) -> Reply:
    """GET /v1beta/models (the health check), one page."""
    models = [
        {"name": f"models/{m}", "displayName": m, "supportedGenerationMethods":
         ["generateContent", "countTokens"]}
        for m in sorted(MODELS | extra_models)
    ]  # fmt: skip
    return Reply(200, {"content-type": JSON_TYPE}, orjson.dumps({"models": models}))
