"""A Slack stand-in on loopback: the Web API's ``chat.postMessage`` and ``chat.update``, and
an incoming webhook (``POST /services/T000/B000/<key>``).

It answers the way Slack does: Web API errors are HTTP 200 with ``{"ok": false, "error":
...}``. Arguments come form-encoded (``token`` may be a field, ``blocks`` and ``metadata``
are JSON text) or as JSON (then only ``Authorization: Bearer`` authenticates). It checks
the token (``not_authed``, ``invalid_auth``), the channel (an id or ``#name`` to post,
only the id to edit: ``channel_not_found``), the text (``no_text``, ``msg_too_long``), Block
Kit's limits (``invalid_blocks``: at most 50 blocks, header text at most 150 characters,
section text at most 3,000, ...), ``metadata`` (``invalid_metadata_format``) and that an
edited message exists (``message_not_found``). A post gets ``{"ok": true, "channel":
<id>, "ts": <increasing>}``.

Messages are kept per channel with their thread replies and earlier versions, so a test
can say "the parent was edited to resolved". A batch message (several incidents opened
together) counts as delivered once per incident it names. Tests can make the next requests
fail with an HTTP status (:meth:`SlackStandIn.fail_next`: 429 with ``Retry-After`` answers
``ratelimited``) or with a Slack error (:meth:`SlackStandIn.error_next`), and delete a
message (:meth:`SlackStandIn.delete`).

Interactivity: ``actions`` blocks are checked as Slack does (buttons: text, ``action_id``,
``value``, ``style``, ``confirm``); :meth:`SlackStandIn.click` builds the request Slack
sends to an app's interactivity URL when someone clicks a message's button (a
``block_actions`` payload, form-encoded, signed with :attr:`SlackStandIn.signing_secret`
as Slack signs), and what an app posts to the payload's ``response_url`` is kept in
:attr:`SlackStandIn.responses`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.standins.base import Delivered, Failure, Failures, Server

__all__ = ["Message", "Request", "SlackStandIn", "validate_blocks"]

MAX_BLOCKS, MAX_HEADER, MAX_SECTION, MAX_FIELD, MAX_TEXT = 50, 150, 3000, 2000, 40_000
TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
KNOWN_BLOCKS = frozenset({"header", "section", "context", "divider", "actions", "rich_text"})
CONTENT_ERRORS = frozenset(
    {"no_text", "msg_too_long", "invalid_blocks", "invalid_metadata_format", "invalid_payload"}
)
_CONTEXT = re.compile(r"driftwatch (\w+) · incident `([^`]*)`")
_BATCH = re.compile(r"driftwatch (\w+) · batch `")
_INCIDENT = re.compile(r"incident `([^`]*)`")
MAX_BUTTON_TEXT, MAX_ACTION_ID, MAX_VALUE, MAX_ELEMENTS = 75, 255, 2000, 25


def _actions_block(errors: list[str], where: str, block: dict[str, Any]) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ELEMENTS:
        errors.append(f"must have 1 to {MAX_ELEMENTS} elements [json-pointer:{where}/elements]")
        return
    ids: set[str] = set()
    for i, item in enumerate(elements):
        at = f"{where}/elements/{i}"
        if not isinstance(item, dict) or item.get("type") != "button":
            errors.append(f"unsupported element [json-pointer:{at}]")
            continue
        _text_object(errors, f"{at}/text", item.get("text"), MAX_BUTTON_TEXT)
        if isinstance(item.get("text"), dict) and item["text"].get("type") != "plain_text":
            errors.append(f"must be plain_text [json-pointer:{at}/text]")
        action_id = item.get("action_id")
        if not isinstance(action_id, str) or not 1 <= len(action_id) <= MAX_ACTION_ID:
            errors.append(f"must be 1 to 255 characters [json-pointer:{at}/action_id]")
        elif action_id in ids:
            errors.append(f"action_id must be unique [json-pointer:{at}/action_id]")
        else:
            ids.add(action_id)
        value = item.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > MAX_VALUE):
            errors.append(f"must be less than 2001 characters [json-pointer:{at}/value]")
        if item.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be primary or danger [json-pointer:{at}/style]")
        confirm = item.get("confirm")
        if confirm is not None:
            for part, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
                _text_object(errors, f"{at}/confirm/{part}", confirm.get(part), limit)


def _text_object(errors: list[str], where: str, obj: object, limit: int) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in TEXT_TYPES:
        errors.append(f"must be a text object (plain_text or mrkdwn) [json-pointer:{where}]")
        return
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be more than 0 characters [json-pointer:{where}/text]")
    elif len(text) > limit:
        errors.append(f"must be less than {limit + 1} characters [json-pointer:{where}/text]")
    if obj["type"] == "mrkdwn" and "emoji" in obj:
        errors.append(f"emoji is not allowed in mrkdwn [json-pointer:{where}]")


def validate_blocks(blocks: object) -> list[str]:
    """What Slack would say is wrong with ``blocks`` (empty: valid), in its own words."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for n, block in enumerate(blocks):
        where = f"/blocks/{n}"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict) or kind not in KNOWN_BLOCKS:
            errors.append(f"unsupported type: {kind} [json-pointer:{where}]")
        elif kind == "header":
            _text_object(errors, f"{where}/text", block.get("text"), MAX_HEADER)
            if isinstance(block.get("text"), dict) and block["text"].get("type") != "plain_text":
                errors.append(f"must be plain_text [json-pointer:{where}/text]")
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide text or fields [json-pointer:{where}]")
            if "text" in block:
                _text_object(errors, f"{where}/text", block["text"], MAX_SECTION)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                errors.append(f"no more than 10 items allowed [json-pointer:{where}/fields]")
            else:
                for i, item in enumerate(fields):
                    _text_object(errors, f"{where}/fields/{i}", item, MAX_FIELD)
        elif kind == "actions":
            _actions_block(errors, where, block)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"must have 1 to 10 elements [json-pointer:{where}/elements]")
            else:
                for i, item in enumerate(elements):
                    _text_object(errors, f"{where}/elements/{i}", item, MAX_SECTION)
        if isinstance(block, dict) and len(str(block.get("block_id", ""))) > 255:
            errors.append(f"must be less than 256 characters [json-pointer:{where}/block_id]")
    return errors


@dataclass
class Message:
    """One message as Slack keeps it: its current version and the ones it was edited from."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    """The parent's ``ts`` for a thread reply."""
    webhook: bool = False
    """Posted through the incoming webhook."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Earlier versions (``text``, ``blocks``, ``metadata``), oldest first."""
    deleted: bool = False

    def as_posted(self) -> Message:
        """The message as it was first posted (before any edit)."""
        if not self.history:
            return self
        first = self.history[0]
        return Message(self.channel, self.ts, first["text"], first["blocks"], first["metadata"])

    @property
    def header(self) -> str:
        """The first header block's text (empty without one)."""
        for block in self.blocks:
            if block.get("type") == "header":
                return str(block["text"]["text"])
        return ""

    @property
    def content(self) -> str:
        """Every text in the message (fallback and blocks), one per line, for assertions."""
        texts = [self.text]
        for block in self.blocks:
            items = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
            for item in items:  # a text object, or a button holding one
                text = item.get("text") if isinstance(item, dict) else None
                text = text.get("text") if isinstance(text, dict) else text
                if isinstance(text, str):
                    texts.append(text)
        return "\n".join(texts)


@dataclass(frozen=True, slots=True)
class Request:
    """One request as it arrived: its path, when (``time.monotonic``), what was answered."""

    path: str
    at: float
    status: int
    error: str | None = None


class SlackStandIn:
    """``async with SlackStandIn() as slack``: Slack's Web API and a webhook (a ``StandIn``)."""

    def __init__(self, token: str | None = None, channels: dict[str, str] | None = None) -> None:
        self.token = token or f"xoxb-1-{secrets.token_hex(16)}"
        """The bot token it accepts."""
        self.secret = self.token
        self.webhook_key = secrets.token_urlsafe(18)
        """The key in the incoming webhook's path: the webhook URL's secret."""
        self.channels = channels or {"C123": "drift"}
        """Channel ids and names; the webhook posts to the first."""
        self.url = ""
        self.messages: list[Message] = []
        """Every accepted new message (top-level, reply, webhook), in order."""
        self.requests: list[Request] = []
        self.rejected: list[tuple[str, str, list[str]]] = []
        """(path, Slack's error, block errors) of every request refused for its content."""
        self._failures = Failures()
        self._errors: deque[str] = deque()
        self._details: list[str] = []
        """Block errors of the last refused message."""
        self._count = 0
        self.signing_secret = secrets.token_hex(16)
        """The app's signing secret: :meth:`click` signs with it."""
        self.responses: list[dict[str, Any]] = []
        """What was posted to ``response_url`` s (ephemeral answers to a click)."""
        app = web.Application()
        app.router.add_post("/actions/{id}", self._response_url)
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_post("/api/chat.update", self._update)
        app.router.add_post("/services/T000/B000/{key}", self._webhook)
        self._server = Server(app)

    async def __aenter__(self) -> SlackStandIn:
        await self._server.__aenter__()
        self.url = self._server.url
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.__aexit__(*exc)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/T000/B000/{self.webhook_key}"

    def receiver_config(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "slack",
            "token": self.token,
            "channel": "#drift",
            "base_url": f"{self.url}/api/",
        }

    def webhook_config(self, name: str) -> dict[str, Any]:
        """The ``notifiers:`` entry for the incoming-webhook mode."""
        return {"name": name, "type": "slack", "webhook_url": self.webhook_url}

    def recover(self) -> None:
        """Drop the failures still queued: the service is up again."""
        self._failures.clear()

    def fail_next(
        self, status: int, *, times: int = 1, retry_after: int | None = None, body: Any = None
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (429: ``ratelimited``)."""
        self._failures.add(Failure(status, times, retry_after, body))

    def error_next(self, error: str, *, times: int = 1) -> None:
        """Answer the next ``times`` Web API requests ``{"ok": false, "error": error}``."""
        self._errors.extend([error] * times)

    @property
    def delivered(self) -> list[Delivered]:
        """One per message, or per incident of a batch message, in order."""
        return [
            Delivered(incident, kind, raw=m)
            for m in self.messages
            for incident, kind in _incidents_and_kind(m.as_posted())
        ]

    def top_level(self, channel: str = "C123") -> list[Message]:
        """The channel's messages that are not replies (nor deleted), in order."""
        return [m for m in self.shown() if m.channel == channel and m.thread_ts is None]

    def replies(self, ts: str) -> list[Message]:
        return [m for m in self.shown() if m.thread_ts == ts]

    def message(self, ts: str) -> Message:
        (found,) = [m for m in self.shown() if m.ts == ts]
        return found

    def shown(self) -> list[Message]:
        """The messages not deleted."""
        return [m for m in self.messages if not m.deleted]

    def delete(self, ts: str) -> None:
        """As if someone deleted the message: editing it answers ``message_not_found``."""
        self.message(ts).deleted = True

    def click(
        self,
        message: Message,
        action_id: str,
        *,
        user: dict[str, str] | None = None,
        timestamp: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The request body and headers Slack sends when ``user`` clicks the button
        ``action_id`` of ``message`` (signed at ``timestamp``, default now)."""
        button = next(
            e
            for block in message.blocks
            if block.get("type") == "actions"
            for e in block["elements"]
            if e.get("action_id") == action_id
        )
        who = user or {"id": "U0ALICE", "username": "alice", "name": "alice"}
        payload = {
            "type": "block_actions",
            "user": who,
            "team": {"id": "T000"},
            "channel": {"id": message.channel},
            "container": {"type": "message", "message_ts": message.ts},
            "message": {"ts": message.ts, "text": message.text},
            "response_url": f"{self.url}/actions/{secrets.token_hex(4)}",
            "trigger_id": "1.2.3",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b",
                    "value": button.get("value"),
                    "action_ts": str(time.time()),
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return body, self.sign(body, timestamp)

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Slack's signature headers for ``body`` (``v0=`` HMAC-SHA256 of ``v0:ts:body``)."""
        at = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + at.encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {
            "X-Slack-Request-Timestamp": at,
            "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded",
        }

    # -- the endpoints ---------------------------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(json.loads(await request.read()))
        return web.Response(text="ok")

    async def _post_message(self, request: web.Request) -> web.Response:
        return await self._api(request, self._check_post)

    async def _update(self, request: web.Request) -> web.Response:
        return await self._api(request, self._check_update)

    async def _api(
        self, request: web.Request, check: Callable[[dict[str, Any]], dict[str, Any] | str]
    ) -> web.Response:
        failure = self._failures.take()
        if failure is not None:
            return self._fail(request, failure, webhook=False)
        args, token = await _arguments(request)
        if token is None:
            return self._error(request, "not_authed")
        if token != self.token:
            return self._error(request, "invalid_auth")
        if self._errors:
            return self._error(request, self._errors.popleft())
        answer: dict[str, Any] | str = check(args)
        if isinstance(answer, str):
            return self._error(request, answer)
        self._record(request, 200, None)
        return web.json_response({"ok": True, **answer})

    def _check_post(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._channel(args.get("channel"), names=True)
        if channel is None:
            return "channel_not_found"
        problem = self._check_content(args)
        if problem:
            return problem
        self._count += 1
        ts = f"{1_700_000_000 + self._count}.{self._count:06d}"
        thread_ts = args.get("thread_ts") or None
        message = Message(channel, ts, args.get("text") or "", args.get("blocks") or [])
        message.metadata, message.thread_ts = args.get("metadata"), thread_ts
        self.messages.append(message)
        return {"channel": channel, "ts": ts, "message": {"text": message.text, "ts": ts}}

    def _check_update(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._channel(args.get("channel"), names=False)
        if channel is None:
            return "channel_not_found"
        found = [m for m in self.shown() if m.channel == channel and m.ts == args.get("ts")]
        if not found:
            return "message_not_found"
        problem = self._check_content(args)
        if problem:
            return problem
        message = found[0]
        message.history.append(
            {"text": message.text, "blocks": message.blocks, "metadata": message.metadata}
        )
        message.text, message.blocks = args.get("text") or "", args.get("blocks") or []
        message.metadata = args.get("metadata", message.metadata)
        return {"channel": channel, "ts": message.ts, "text": message.text}

    def _check_content(self, args: dict[str, Any]) -> str | None:
        """Slack's error for the message's text, blocks and metadata (``None``: fine)."""
        text, blocks = args.get("text"), args.get("blocks")
        self._details = []
        if not text and not blocks:
            return "no_text"
        if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
            return "msg_too_long"
        if blocks is not None and (details := validate_blocks(blocks)):
            self._details = details
            return "invalid_blocks"
        if "metadata" in args and not _metadata_ok(args["metadata"]):
            return "invalid_metadata_format"
        return None

    def _channel(self, value: object, *, names: bool) -> str | None:
        if value in self.channels:
            return str(value)
        if names and isinstance(value, str):
            for id_, name in self.channels.items():
                if value.removeprefix("#") == name:
                    return id_
        return None

    async def _webhook(self, request: web.Request) -> web.Response:
        failure = self._failures.take()
        if failure is not None:
            return self._fail(request, failure, webhook=True)
        if request.match_info["key"] != self.webhook_key:
            return self._text(request, 404, "no_service")
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return self._text(request, 400, "invalid_payload")
        if not isinstance(payload, dict):
            return self._text(request, 400, "invalid_payload")
        error = self._check_content(payload)
        if error:
            return self._text(request, 400, error)
        self._count += 1
        ts = f"{1_700_000_000 + self._count}.{self._count:06d}"
        channel = next(iter(self.channels))
        text, blocks = payload.get("text") or "", payload.get("blocks") or []
        self.messages.append(Message(channel, ts, text, blocks, webhook=True))
        return self._text(request, 200, "ok")

    # -- answers ---------------------------------------------------------------------------

    def _error(self, request: web.Request, error: str) -> web.Response:
        self._record(request, 200, error)
        answer: dict[str, Any] = {"ok": False, "error": error}
        if error == "invalid_blocks":
            answer["errors"] = self._details
            answer["response_metadata"] = {"messages": [f"[ERROR] {d}" for d in self._details]}
        return web.json_response(answer)

    def _text(self, request: web.Request, status: int, text: str) -> web.Response:
        self._record(request, status, None if status == 200 else text)
        return web.Response(status=status, text=text)

    def _record(self, request: web.Request, status: int, error: str | None) -> None:
        self.requests.append(Request(request.path, time.monotonic(), status, error))
        if error in CONTENT_ERRORS:
            self.rejected.append((request.path, error, list(self._details)))

    def _fail(self, request: web.Request, failure: Failure, *, webhook: bool) -> web.Response:
        headers = failure.headers()
        self._record(request, failure.status, None)
        body = _failure_body(failure.status, webhook) if failure.body is None else failure.body
        if isinstance(body, str):
            return web.Response(status=failure.status, text=body, headers=headers)
        return web.json_response(body, status=failure.status, headers=headers)


async def _arguments(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """The call's arguments and its token, read the way Slack reads them."""
    auth = request.headers.get("Authorization", "")
    token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
    if request.content_type == "application/json":
        try:
            args = json.loads(await request.read())
        except ValueError:
            args = {}
        return (args if isinstance(args, dict) else {}), token
    form = await request.post()
    args = {k: v for k, v in form.items() if isinstance(v, str)}
    token = token or args.pop("token", None)
    for key in ("blocks", "metadata"):  # JSON text in a form
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                args[key] = None if key == "metadata" else "invalid"
    return args, token


def _failure_body(status: int, webhook: bool) -> Any:
    """What Slack says with an HTTP error: the Web API as JSON, a webhook as text."""
    if status == 429:
        api, hook = "ratelimited", "rate_limited"
    elif status >= 500:
        api, hook = "internal_error", "internal_error"
    else:
        api, hook = "invalid_arguments", "invalid_payload"
    return hook if webhook else {"ok": False, "error": api}


def _metadata_ok(metadata: object) -> bool:
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and re.fullmatch(r"[A-Za-z0-9_]{1,255}", metadata["event_type"]) is not None
        and isinstance(metadata.get("event_payload"), dict)
    )


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _incidents_and_kind(message: Message) -> list[tuple[str, str]]:
    """The incident (several for a batch) and kind, from the message's ``metadata``, else
    from its context line; ``[("", "")]`` when it names none."""
    payload = (message.metadata or {}).get("event_payload") or {}
    if payload.get("incident_id") and payload.get("kind"):
        return [(str(payload["incident_id"]), str(payload["kind"]))]
    if isinstance(payload.get("incidents"), list) and payload.get("kind"):
        return [(str(i.get("incident_id")), str(payload["kind"])) for i in payload["incidents"]]
    found = _CONTEXT.search(message.content)
    if found is not None:
        return [(_unescape(found[2]), found[1])]
    batch = _BATCH.search(message.content)
    if batch is not None:  # a webhook's batch: the incidents it shows
        return [(_unescape(i), batch[1]) for i in _INCIDENT.findall(message.content)]
    return [("", "")]
