"""The typed keys under which the server's application holds its state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from driftwatch.server.backend import Backend
from driftwatch.settings.server import ServerSettings

__all__ = ["BACKEND", "LOG", "SETTINGS"]

BACKEND = web.AppKey("backend", Backend)
SETTINGS = web.AppKey("settings", ServerSettings)
LOG: web.AppKey[Any] = web.AppKey("log")
