"""A tiny synchronous HTTP client for raw requests the SDKs would refuse to send."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

import orjson


@dataclass
class Reply:
    status_code: int
    headers: Message
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            return Reply(reply.status, reply.headers, reply.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    return request("POST", url, body, {"content-type": "application/json", **(headers or {})})


def get(url: str, headers: dict[str, str] | None = None) -> Reply:
    return request("GET", url, headers=headers)
