"""``POST /hooks/slack``: the buttons of an incident's Slack message (Slack's interactivity
request URL).

Slack signs each request with the app's signing secret: ``X-Slack-Signature: v0=<HMAC-SHA256
of "v0:<timestamp>:<raw body>">`` and ``X-Slack-Request-Timestamp``. The signature is
checked over the raw body before anything is parsed (slack_sdk's ``SignatureVerifier``:
a timestamp more than 5 minutes away is refused, so a captured request cannot be replayed
later); a missing or wrong signature, or a body altered after signing, is answered 401 and
nothing else happens. The secrets are never logged.

Slack wants an answer within 3 seconds: a valid request is answered 200 at once and the
action runs in a task of its own. Its outcome reaches Slack the usual way: the action's
``updated`` notification edits the incident's message (``chat.update``) and replies in its
thread saying who did what. When the action cannot be done (resolved, unknown, revert not
available) the clicker alone is told, through the payload's ``response_url`` (an ephemeral
message).

Buttons (an ``actions`` block; each ``value`` is the incident id): ``driftwatch_approve``,
``driftwatch_snooze_4h``, ``driftwatch_revert``. The actor recorded is the Slack user:
``<username> (via Slack, <user id>)``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from driftwatch.incidents import Action
from driftwatch.server.actions import ActionFailed, perform
from driftwatch.server.backend import Backend
from driftwatch.server.keys import BACKEND, LOG

__all__ = [
    "APPROVE",
    "BUTTONS",
    "REVERT",
    "SNOOZE_4H",
    "SlackHook",
    "slack_actor",
]

APPROVE, SNOOZE_4H, REVERT = "driftwatch_approve", "driftwatch_snooze_4h", "driftwatch_revert"
BUTTONS: dict[str, tuple[Action, float | None]] = {
    APPROVE: (Action.APPROVED, None),
    SNOOZE_4H: (Action.SNOOZED, 4 * 3600.0),
    REVERT: (Action.REVERTED, None),
}
"""Action id -> (the action, a snooze's length)."""
_VERBS = {Action.APPROVED: "approve", Action.SNOOZED: "snooze", Action.REVERTED: "revert"}


def slack_actor(user: object) -> str | None:
    """The recorded actor for a payload's ``user`` (``None`` when it names nobody)."""
    if not isinstance(user, dict):
        return None
    name = user.get("username") or user.get("name")
    uid = user.get("id")
    name = name if isinstance(name, str) and name.strip() else None
    uid = uid if isinstance(uid, str) and uid.strip() else None
    if name and uid:
        return f"{name} (via Slack, {uid})"
    if name or uid:
        return f"{name or uid} (via Slack)"
    return None


class SlackHook:
    """The handler, holding the verifiers and the tasks it started."""

    def __init__(self, secrets: tuple[str, ...], *, timeout: float = 10.0) -> None:
        self._verifiers = [SignatureVerifier(s) for s in secrets if s.strip()]
        self._tasks: set[asyncio.Task[None]] = set()
        self._timeout = timeout

    def authentic(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        """Whether one of the secrets signed ``body`` at ``timestamp`` (within 5 minutes)."""
        if not timestamp or not signature:
            return False
        for verifier in self._verifiers:
            try:
                if verifier.is_valid(body, timestamp, signature):
                    return True
            except (ValueError, TypeError):  # a timestamp not a number, a body not UTF-8
                return False
        return False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        log = request.app[LOG]
        if not self.authentic(
            body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
        ):
            log.warning("slack hook refused: bad, missing or expired signature")
            return web.json_response({"error": "bad or missing signature"}, status=401)
        payload = _payload(body)
        if payload is None or payload.get("type") != "block_actions":
            return web.Response(status=200)  # nothing driftwatch does: acknowledged
        backend = request.app[BACKEND]
        for item in payload.get("actions") or ():
            if isinstance(item, dict) and item.get("action_id") in BUTTONS:
                task = asyncio.create_task(self._act(backend, log, payload, item))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return web.Response(status=200)

    async def _act(
        self, backend: Backend, log: Any, payload: dict[str, Any], item: dict[str, Any]
    ) -> None:
        action, snooze = BUTTONS[str(item["action_id"])]
        incident_id = item.get("value")
        actor = slack_actor(payload.get("user"))
        try:
            if not isinstance(incident_id, str) or not incident_id or actor is None:
                raise ActionFailed(400, "the button names no incident or no user")
            until = time.time() + snooze if snooze is not None else None
            await perform(backend, incident_id, action, actor=actor, until=until)
            log.info("slack action", action=str(action), incident=incident_id, actor=actor)
        except ActionFailed as e:
            log.warning(
                "slack action refused", action=str(action), incident=incident_id, error=e.message
            )
            await self._tell(payload, f"driftwatch could not {_VERBS[action]}: {e.message}", log)
        except Exception as e:  # a task's: nobody else would see it
            log.error("slack action failed", incident=incident_id, error=f"{type(e).__name__}")
            await self._tell(payload, f"driftwatch could not {_VERBS[action]}: internal error", log)

    async def _tell(self, payload: dict[str, Any], text: str, log: Any) -> None:
        """An ephemeral message to the user who clicked (``response_url``)."""
        url = payload.get("response_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return
        message = {"response_type": "ephemeral", "replace_original": False, "text": text}
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, json=message, allow_redirects=False) as response,
            ):
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("slack response_url unreachable", error=type(e).__name__)

    async def close(self) -> None:
        """Cancel the actions still running (the server stops)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _payload(body: bytes) -> dict[str, Any] | None:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        data = json.loads(fields["payload"][0])
    except (ValueError, KeyError, IndexError):
        return None
    return data if isinstance(data, dict) else None
