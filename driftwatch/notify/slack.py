"""The ``slack`` receiver: one Slack message per incident (or per batch of incidents opened
together), threaded and edited in place.

Exactly one of two modes is configured. **Web API** (``token`` + ``channel``, slack_sdk's
``AsyncWebClient`` on the shared session): ``opened`` posts a top-level message and keeps
its channel id and ``ts`` as the incident's thread; ``updated``, ``reminder`` and
``resolved`` edit that parent (``chat.update``) to show the current state (on resolve
"RESOLVED" and when), then reply in its thread. The edit goes first because it is
idempotent: if the reply fails and is retried, the reply is still posted once. Without a
thread (``opened`` was dead-lettered) or with the parent gone, a new top-level message
starts a new thread; ``test`` posts one labelled message. **Incoming webhook**
(``webhook_url``, a secret: it holds the key): one top-level message per notification.

**Batches** (``group_wait``, :meth:`SlackReceiver.deliver_batch`): the incidents opened
together are announced in one top-level message (``render_batch``: a compact section per
incident, no diffs). In the Web API mode every incident of the batch keeps that message
as its thread, marked ``shared``: its ``updated``, ``reminder`` and ``resolved`` only reply
in the thread (each reply names its policy and incident) and never edit the parent, which
sums up several incidents; with the parent gone, a new top-level message starts the
incident's own thread. A batch of one is sent as that incident's own message.

Messages are Block Kit within Slack's limits (50 blocks, header 150 and section 3,000
characters): severity and ``namespace/name``, reason and state, findings, the diff in a
code block (cut, with a note), the Git source, who changed the live policy and when, the
incident id, a one-line ``text`` fallback; Web API messages carry ``metadata``
(``driftwatch_incident``: incident id and kind; a batch's ``driftwatch_incident_batch``:
batch id, kind and incident ids). ``ok: true`` is delivered; HTTP 429
(``Retry-After`` honoured), 5xx, network errors, timeouts and :data:`RETRYABLE_ERRORS` are
retried; other Slack errors and 4xx are permanent. No reason holds the token or webhook URL.
Requests to one channel are spaced by ``min_interval`` (Slack: ~1 message/s per channel).

**Buttons** (``signing_secret``, or ``buttons: true`` with ``server.slack_signing_secret``):
an open incident's message carries *Revert to Git*, *Approve live* and *Snooze 4h*,
handled by the server's ``POST /hooks/slack`` (the Slack app's interactivity URL), which
checks Slack's signature with the signing secret; the action's ``updated`` notification
then edits the message as any update does.

slack_sdk, as used here: its retry handlers are off (the outbox retries; its 429 handler
would sleep inside the call); its ``timeout`` only covers sessions it creates, so calls are
bounded with ``asyncio.timeout``; it reads ``HTTP(S)_PROXY`` itself, ignoring ``NO_PROXY``,
so that is cleared and the shared session's proxy policy applies as for other receivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from pydantic import ConfigDict, SecretStr, field_validator, model_validator
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from driftwatch.notify.http import outcome_of, retry_after
from driftwatch.notify.model import (
    Batch,
    Kind,
    Notification,
    Outcome,
    ReceiverContext,
    ReceiverType,
)
from driftwatch.notify.slack_render import SlackMessage, cut, one_line, render, render_batch
from driftwatch.values.secrets import SecretFileModel

__all__ = [
    "RECEIVER",
    "SHARED",
    "SlackConfig",
    "SlackMessage",
    "SlackReceiver",
    "build",
    "render",
    "render_batch",
]

DEFAULT_BASE_URL = "https://slack.com/api/"

RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
"""Slack ``error`` codes worth retrying, whatever the HTTP status."""
PARENT_GONE = frozenset({"message_not_found", "channel_not_found", "is_archived"})
"""``chat.update`` errors meaning the parent is no more: start a new thread."""
PARENT_UNEDITABLE = frozenset({"cant_update_message", "edit_window_closed"})
"""``chat.update`` errors meaning the parent stays as it is: reply in its thread anyway."""

WEBHOOK = "Slack incoming webhook"
SHARED = "shared"
"""The ``thread`` key marking a batch message's thread (``"1"``): its parent is never
edited for one incident."""


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


class SlackConfig(SecretFileModel):
    """``type: slack``: a bot token and a channel (threads and edits), or an incoming
    webhook (messages only)."""

    # Inputs stay out of ValidationError texts: the token and the webhook URL are secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    token: SecretStr | None = None
    """A bot token (``xoxb-...``) with the ``chat:write`` scope, its bot a member of
    ``channel``. May be given as ``token_file`` (a mounted Secret)."""
    channel: str | None = None
    """Where incidents are posted, with ``token``: a channel id (``C0123ABCD``) or name
    (``#drift``)."""
    base_url: str | None = None
    """The Web API's base URL, with ``token``; unset: Slack's ``https://slack.com/api/``."""
    webhook_url: SecretStr | None = None
    """Instead of ``token`` and ``channel``: an incoming webhook's URL (its channel is
    fixed when the webhook is made; no threads, no edits). A secret: it holds the key.
    May be given as ``webhook_url_file``."""
    signing_secret: SecretStr | None = None
    """The Slack app's signing secret (*Basic Information → App Credentials*), usually
    ``signing_secret_file``: turns on the message's buttons, and ``POST /hooks/slack``
    (with a ``server:``) accepts their clicks signed with it."""
    buttons: bool | None = None
    """Show the buttons (Revert, Approve, Snooze 4h) on incident messages; unset: when
    ``signing_secret`` is set (give ``true`` when the secret is
    ``server.slack_signing_secret``)."""

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            token = value.get_secret_value().strip()
            if not token or any(c.isspace() for c in token):
                raise ValueError("must be a Slack token (xoxb-...) without spaces")
            value = SecretStr(token)
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip("#") or any(c.isspace() for c in value)):
            raise ValueError("must be a channel id (C0123ABCD) or name (#drift)")
        return value

    @field_validator("base_url", "webhook_url")
    @classmethod
    def _url(cls, value: str | SecretStr | None) -> str | SecretStr | None:
        if value is not None:
            _http_url(value.get_secret_value() if isinstance(value, SecretStr) else value)
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        api = self.token is not None or self.channel is not None
        if self.webhook_url is not None and api:
            problem = "give either token and channel (the Web API) or webhook_url, not both"
        elif self.webhook_url is not None and self.base_url is not None:
            problem = "base_url is for the Web API (token and channel), not for webhook_url"
        elif self.webhook_url is None and not api:
            problem = (
                "give token and channel (the Web API: threads and edits) "
                "or webhook_url (an incoming webhook: messages only)"
            )
        elif self.webhook_url is None and self.token is None:
            problem = "channel needs token (a bot token, or token_file)"
        elif self.webhook_url is None and self.channel is None:
            problem = "token needs channel (where incidents are posted)"
        else:
            return self
        raise ValueError(problem)


# -- delivery -----------------------------------------------------------------------------


class _CallFailed(Exception):
    """A Slack call that did not succeed: the outcome to report, and Slack's error code."""

    def __init__(self, outcome: Outcome, error: str | None = None) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome
        self.error = error


def _details(data: object) -> str:
    """What Slack added to an error (``needed`` scope, block errors), short."""
    if not isinstance(data, Mapping):
        return ""
    parts = [f"needed {data['needed']}"] if data.get("needed") else []
    meta = data.get("response_metadata")
    errors = data.get("errors") or (meta.get("messages") if isinstance(meta, Mapping) else None)
    if isinstance(errors, list):
        parts += [one_line(e) for e in errors[:3]]
    return cut(f" ({'; '.join(parts)})", 200) if parts else ""


def _api_failure(method: str, e: SlackApiError) -> _CallFailed:
    """The outcome of a call slack_sdk raised for: a non-200 answer or ``ok: false``."""
    what = f"Slack {method}"
    response = e.response
    data: object = None
    if isinstance(response, AsyncSlackResponse):
        status, headers, data = response.status_code, response.headers, response.data
    else:  # aiohttp's own response, when the body was not JSON
        status, headers = getattr(response, "status", 0), getattr(response, "headers", {})
    error = str(data["error"]) if isinstance(data, Mapping) and data.get("error") else None
    if error in RETRYABLE_ERRORS:
        reason = f"{what}: {error}" if status == 200 else f"{what} answered {status}: {error}"
        return _CallFailed(Outcome.retry(reason, retry_after(headers)), error)
    if 200 <= status < 300:
        if error is None:
            return _CallFailed(Outcome.retry(f"{what} answered {status} without ok"))
        return _CallFailed(Outcome.fail(f"{what}: {error}{_details(data)}"), error)
    body = error or (data if isinstance(data, str) else "")
    return _CallFailed(outcome_of(status, headers, body + _details(data), what=what), error)


class SlackReceiver:
    """Posts, threads and edits one message per incident or batch (see the module's
    docstring)."""

    def __init__(
        self, name: str, config: SlackConfig, ctx: ReceiverContext, *, min_interval: float = 1.0
    ) -> None:
        self.name = name
        self._session = ctx.session
        self._timeout = ctx.timeout
        self.min_interval = min_interval
        """Seconds between the end of one request to a channel and the next (Slack: ~1/s)."""
        self._lock = asyncio.Lock()
        self._last: dict[str, float] = {}
        """When the last request to each channel ended (``time.monotonic``)."""
        self._ids: dict[str, str] = {}
        """The configured channel's name -> the id Slack answered with (one channel)."""
        self._channel = config.channel or ""
        self._webhook = config.webhook_url.get_secret_value() if config.webhook_url else ""
        self._client: AsyncWebClient | None = None
        self._secrets: list[str] = []
        self.buttons = config.buttons if config.buttons is not None else bool(config.signing_secret)
        """Whether incident messages carry the action buttons."""
        if config.signing_secret is not None:
            self._secrets.append(config.signing_secret.get_secret_value())
        if self._webhook:
            key = urlsplit(self._webhook).path.rstrip("/").rpartition("/")[2]
            self._secrets += [self._webhook] + ([key] if len(key) >= 8 else [])
        if config.token is not None:
            self._secrets.append(config.token.get_secret_value())
            self._client = AsyncWebClient(
                token=config.token.get_secret_value(),
                base_url=config.base_url or DEFAULT_BASE_URL,
                session=ctx.session,
                timeout=max(1, math.ceil(ctx.timeout)),
                retry_handlers=[],  # the outbox retries
            )
            self._client.proxy = None  # the shared session's proxy policy, not the env's

    async def deliver(self, notification: Notification) -> Outcome:
        self._check_session()
        if self._client is None:
            message = render(notification, buttons=self.buttons)
            return await self._finish(self._post_webhook(message))
        return await self._finish(self._deliver_api(self._client, notification))

    async def deliver_batch(self, batch: Batch) -> Outcome:
        """One message for every incident of ``batch``; in the Web API mode its channel id
        and ``ts``, marked :data:`SHARED`, are each incident's thread."""
        if len(batch.notifications) == 1:  # its own message, edited in place later
            return await self.deliver(batch.notifications[0])
        self._check_session()
        if self._client is None:
            return await self._finish(self._post_webhook(render_batch(batch, threaded=False)))
        return await self._finish(self._post_batch(self._client, batch))

    def _check_session(self) -> None:
        if self._session.closed:  # slack_sdk would quietly open a session of its own
            raise RuntimeError(f"receiver {self.name!r}: the shared HTTP session is closed")

    async def _finish(self, attempt: Awaitable[Outcome]) -> Outcome:
        """What ``attempt`` came to (a failed call's outcome too), no secret in its reason."""
        try:
            outcome = await attempt
        except _CallFailed as e:
            outcome = e.outcome
        if outcome.reason:
            outcome = dataclasses.replace(outcome, reason=self._redact(outcome.reason))
        return outcome

    async def _deliver_api(self, client: AsyncWebClient, notification: Notification) -> Outcome:
        channel = notification.thread.get("channel")
        ts = notification.thread.get("ts")
        if notification.kind in (Kind.OPENED, Kind.TEST) or not channel or not ts:
            return await self._start(client, notification)
        if notification.thread.get(SHARED) == "1":
            return await self._reply_shared(client, notification, channel, ts)
        parent = render(notification, buttons=self.buttons)
        try:
            await self._call(
                "chat.update", client.chat_update, channel=channel, ts=ts, **parent.args()
            )
        except _CallFailed as e:
            if e.error in PARENT_GONE:
                return await self._start(client, notification)
            if e.error not in PARENT_UNEDITABLE:
                raise
        await self._post(client, channel, render(notification, reply=True), thread_ts=ts)
        return Outcome.ok({"channel": channel, "ts": ts})

    async def _reply_shared(
        self, client: AsyncWebClient, notification: Notification, channel: str, ts: str
    ) -> Outcome:
        """A reply in a batch message's thread, its parent left as it is (it sums up several
        incidents); a new top-level message if the parent is gone."""
        try:
            await self._post(client, channel, render(notification, reply=True), thread_ts=ts)
        except _CallFailed as e:
            if e.error not in PARENT_GONE:
                raise
            return await self._start(client, notification)
        return Outcome.ok(dict(notification.thread))

    async def _start(self, client: AsyncWebClient, notification: Notification) -> Outcome:
        """A new top-level message; its channel id and ``ts`` are the incident's thread."""
        message = render(notification, buttons=self.buttons)
        response = await self._post(client, self._channel, message)
        return Outcome.ok(_thread_of(response))

    async def _post_batch(self, client: AsyncWebClient, batch: Batch) -> Outcome:
        """The batch message; its channel id and ``ts``, shared, are every incident's thread."""
        response = await self._post(client, self._channel, render_batch(batch))
        thread = _thread_of(response)
        return Outcome.ok({**thread, SHARED: "1"} if thread else None)

    async def _post(
        self, client: AsyncWebClient, channel: str, message: SlackMessage, **more: Any
    ) -> AsyncSlackResponse:
        return await self._call(
            "chat.postMessage",
            client.chat_postMessage,
            channel=channel,
            unfurl_links=False,
            unfurl_media=False,
            **message.args(),
            **more,
        )

    async def _call(
        self,
        method: str,
        send: Callable[..., Awaitable[AsyncSlackResponse]],
        *,
        channel: str,
        **args: Any,
    ) -> AsyncSlackResponse:
        """``send(channel=channel, **args)`` in the channel's turn; _CallFailed if not ok."""
        async with self._turn(channel):
            try:
                async with asyncio.timeout(self._timeout):
                    response = await send(channel=channel, **args)
            except SlackApiError as e:
                raise _api_failure(method, e) from None
            except TimeoutError:
                reason = f"Slack {method} did not answer within {self._timeout:g} s"
                raise _CallFailed(Outcome.retry(reason)) from None
            except aiohttp.ClientError as e:
                reason = f"Slack {method} unreachable: {type(e).__name__}: {e}"
                raise _CallFailed(Outcome.retry(reason)) from None
            answered = response.get("channel")
            if isinstance(answered, str) and answered and answered != channel:
                self._ids.setdefault(channel, answered)  # ``#drift`` and its id: one channel
            return response

    async def _post_webhook(self, message: SlackMessage) -> Outcome:
        payload = {"text": message.text, "blocks": message.blocks, "unfurl_links": False}
        async with self._turn(WEBHOOK):
            try:
                async with self._session.post(
                    self._webhook,
                    json=payload,
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                    allow_redirects=False,
                ) as response:
                    status, headers = response.status, response.headers
                    text = await response.text(errors="replace")
            except TimeoutError:
                return Outcome.retry(f"{WEBHOOK} did not answer within {self._timeout:g} s")
            except aiohttp.ClientError as e:
                return Outcome.retry(f"{WEBHOOK} unreachable: {type(e).__name__}: {e}")
        if 200 <= status < 300 and text.strip() == "ok":
            return Outcome.ok()
        if 200 <= status < 300:
            return Outcome.fail(f"{WEBHOOK} answered {status} without ok: {cut(text, 200)}")
        return outcome_of(status, headers, text, what=WEBHOOK)

    @contextlib.asynccontextmanager
    async def _turn(self, channel: str) -> AsyncIterator[None]:
        """One request to ``channel``, at least ``min_interval`` after the previous ended."""
        async with self._lock:
            last = self._last.get(self._ids.get(channel, channel))
            if last is not None and (wait := last + self.min_interval - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last[self._ids.get(channel, channel)] = time.monotonic()

    def _redact(self, text: str) -> str:
        for secret in self._secrets:  # the whole webhook URL before its key
            text = text.replace(secret, "[redacted]")
        return text

    async def close(self) -> None:
        """Nothing of its own to release: the session is shared."""

    def secrets(self) -> Iterable[str]:
        """The token, or the webhook URL and its key (the path's last part)."""
        yield from self._secrets


def _thread_of(response: AsyncSlackResponse) -> dict[str, str] | None:
    """A posted message's channel id and ``ts``; ``None`` if Slack did not say (posted, but
    nothing to thread on: the next notification starts anew)."""
    channel, ts = response.get("channel"), response.get("ts")
    if not isinstance(channel, str) or not channel or not isinstance(ts, str) or not ts:
        return None
    return {"channel": channel, "ts": ts}


def build(name: str, config: SlackConfig, ctx: ReceiverContext) -> SlackReceiver:
    """``ReceiverType.build`` for ``type: slack``."""
    return SlackReceiver(name, config, ctx)


RECEIVER = ReceiverType("slack", SlackConfig, build, batches=True)
"""The ``slack`` receiver type, for ``notify.registry``."""
