"""The official SDK clients the tests drive the gateway with, built cheaply.

Each SDK client builds its own httpx client, and each httpx client loads certifi's CA bundle
into a fresh SSL context: ~65 ms, paid a thousand times over by a suite that makes a client per
test (or per request). The tests talk plain http on loopback, so one CA-loaded context is made
once and shared; every client still gets its own connection pool, as in a real application.
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any

import anthropic
import openai


@cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def openai_client(base_url: str, api_key: str, **kwargs: Any) -> openai.OpenAI:
    """An `openai.OpenAI` without retries (the tests count attempts), sharing one SSL context."""
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("http_client", openai.DefaultHttpxClient(verify=_ssl_context()))
    return openai.OpenAI(base_url=base_url, api_key=api_key, **kwargs)


def anthropic_client(base_url: str, **kwargs: Any) -> anthropic.Anthropic:
    """An `anthropic.Anthropic` without retries, sharing one SSL context (credentials in kwargs)."""
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("http_client", anthropic.DefaultHttpxClient(verify=_ssl_context()))
    return anthropic.Anthropic(base_url=base_url, **kwargs)
