"""Typed keys for objects stored on the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from proxy.engine.state import GatewayState

STATE: web.AppKey[GatewayState] = web.AppKey("state")
