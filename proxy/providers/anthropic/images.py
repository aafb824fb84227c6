"""Content parts between OpenAI and Anthropic: text, images and PDF documents (MAPPING §2, §3b).

OpenAI carries an image as one URL (``data:`` or ``https:``); Anthropic splits it into a
``base64`` or ``url`` source. Anthropic accepts only four image media types and PDFs as
documents, so anything else is a 400 here rather than an opaque upstream 400 later.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import invalid_request

JSON = dict[str, Any]

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
PDF = "application/pdf"


def openai_part_to_block(part: Any, where: str) -> JSON | None:
    """One OpenAI content part as an Anthropic block; None for a blank text part (Anthropic
    rejects text blocks without non-whitespace text)."""
    if isinstance(part, str):
        return {"type": "text", "text": part} if part.strip() else None
    if not isinstance(part, dict):
        raise invalid_request(f"'{where}' must be a content part object.", where)
    kind = part.get("type")
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise invalid_request(f"'{where}.{kind}' must be a string.", f"{where}.{kind}")
        return {"type": "text", "text": text} if text.strip() else None
    if kind == "image_url":
        return _image_block(part.get("image_url"), f"{where}.image_url")
    if kind == "file":
        return _document_block(part.get("file"), f"{where}.file")
    raise invalid_request(
        f"Content part type {kind!r} at '{where}' has no Anthropic equivalent.", f"{where}.type"
    )


def _image_block(image: Any, where: str) -> JSON:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise invalid_request(f"'{where}.url' must be a non-empty string.", f"{where}.url")
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, f"{where}.url")
        media_type = _ALIASES.get(media_type, media_type)
        if media_type not in IMAGE_TYPES:
            raise invalid_request(
                f"Image media type {media_type!r} at '{where}.url' is not supported; "
                f"use one of {', '.join(sorted(IMAGE_TYPES))}.",
                f"{where}.url",
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid_request(f"'{where}.url' must be an http(s) or data: URL.", f"{where}.url")


def _document_block(file: Any, where: str) -> JSON:
    if not isinstance(file, dict):
        raise invalid_request(f"'{where}' must be an object.", where)
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise invalid_request(
            f"Only inline PDF files ('{where}.file_data') can be sent to an Anthropic model; "
            "file ids have no equivalent.",
            f"{where}.file_data",
        )
    if data.startswith("data:"):
        media_type, data = parse_data_url(data, f"{where}.file_data")
    else:  # bare base64, as the field's docs describe it: trust the file name
        name = str(file.get("filename") or "")
        media_type = PDF if name.lower().endswith(".pdf") else "application/octet-stream"
    if media_type != PDF:
        raise invalid_request(
            f"File media type {media_type!r} at '{where}' is not supported; only PDF is.",
            f"{where}.file_data",
        )
    block: JSON = {
        "type": "document",
        "source": {"type": "base64", "media_type": PDF, "data": data},
    }
    if isinstance(file.get("filename"), str) and file["filename"]:
        block["title"] = file["filename"]
    return block


def parse_data_url(url: str, where: str) -> tuple[str, str]:
    """``data:<mime>;base64,<payload>`` -> (mime, payload); only base64 payloads are usable."""
    header, comma, data = url[5:].partition(",")
    media_type, *params = header.split(";")
    if not comma or "base64" not in params or not data:
        raise invalid_request(f"'{where}' must be a base64 data: URL.", where)
    return media_type.strip().lower(), data


def anthropic_block_to_part(block: Any, where: str) -> JSON | None:
    """One Anthropic user block as an OpenAI content part; None for blocks OpenAI cannot take
    back (thinking), which carry no user content."""
    if not isinstance(block, dict):
        raise invalid_request(f"'{where}' must be a content block object.", where)
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": str(block.get("text") or "")}
    if kind in ("thinking", "redacted_thinking"):
        return None
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if kind == "image":
        return _image_part(source, where)
    if kind == "document":
        return _file_part(block, source, where)
    raise invalid_request(
        f"Content block type {kind!r} at '{where}' has no OpenAI equivalent.", f"{where}.type"
    )


def _image_part(source: JSON, where: str) -> JSON:
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = str(source.get("url") or "")
    else:
        raise invalid_request(
            f"Image source type {source.get('type')!r} at '{where}' has no OpenAI equivalent.",
            f"{where}.source",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _file_part(block: JSON, source: JSON, where: str) -> JSON:
    kind = source.get("type")
    if kind == "base64" and source.get("media_type") == PDF:
        title = block.get("title")
        name = title if isinstance(title, str) and title else "document.pdf"
        data_url = f"data:{PDF};base64,{source.get('data')}"
        return {"type": "file", "file": {"filename": name, "file_data": data_url}}
    if kind == "text":
        return {"type": "text", "text": str(source.get("data") or "")}
    raise invalid_request(
        f"Document source type {kind!r} at '{where}' has no OpenAI equivalent.",
        f"{where}.source",
    )
