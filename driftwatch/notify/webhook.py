"""The ``webhook`` receiver: the incident body as JSON, signed per Standard Webhooks.

Each notification is one ``POST`` of the documented incident body
(:attr:`Notification.body`, ``schema_version`` 1) as compact JSON, with the three headers
of the Standard Webhooks specification (https://www.standardwebhooks.com):

* ``webhook-id``: the notification's id, the same on every retry and after a restart, so
  the consumer can drop duplicates;
* ``webhook-timestamp``: this attempt's time in Unix seconds (consumers reject old ones);
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``"{id}.{timestamp}.{body}"``
  under each configured ``whsec_`` secret, space-separated when there are several, so a
  secret can be rotated without a gap (sign with old and new until the consumer has
  switched, then drop the old one).

With ``cloudevents: true`` the body is wrapped in a CloudEvents 1.0 event in structured
mode (``Content-Type: application/cloudevents+json``): ``type`` is
``io.driftwatch.<body type>`` (``io.driftwatch.drift.opened``), ``source``
``driftwatch/<cluster>``, ``id`` the notification's id, ``time`` the body's
``occurred_at``, ``subject`` ``<namespace>/<name>`` and ``data`` the body. Either way the
signature covers exactly the bytes sent.

A batch (``group_wait``: several incidents opened together) is one ``POST`` of
:func:`batch_body`: ``{"schema_version": 1, "type": "drift.batch", "batch_id",
"occurred_at", "incidents": [<incident body>, ...]}``, the incidents' ``drift.opened``
bodies in the order they opened and ``occurred_at`` the latest of theirs. Its
``webhook-id`` is the batch's id (the same on every retry), signed the same way; as a
CloudEvent its ``type`` is ``io.driftwatch.drift.batch``, ``id`` the batch's id, ``source``
``driftwatch/<cluster>``, ``time`` that ``occurred_at`` and ``data`` that object, with no
``subject``. Outcomes are those of single notifications.

Outcomes follow the specification's advice: 2xx delivered; 408, 425, 429 and 5xx retried
(``Retry-After`` honoured), as are network errors and timeouts; a redirect is not
followed and is permanent (the ``url`` should be updated); 410 Gone is permanent and
disables the receiver; any other status is permanent. Reasons show the URL as
``scheme://host[:port]/path`` only: its user info and query may hold tokens.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import aiohttp
from pydantic import AfterValidator, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

from driftwatch.notify.body import SCHEMA_VERSION
from driftwatch.notify.http import outcome_of
from driftwatch.notify.model import Batch, Notification, Outcome, ReceiverContext, ReceiverType
from driftwatch.values.secrets import SecretFileModel

__all__ = [
    "BATCH_TYPE",
    "CLOUDEVENTS_TYPE_PREFIX",
    "RECEIVER",
    "SECRET_PREFIX",
    "WebhookConfig",
    "WebhookReceiver",
    "batch_body",
    "build",
    "encode",
    "encode_batch",
    "public_url",
    "signature",
    "signing_key",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the prefix every Standard Webhooks secret starts with, not a secret
MIN_KEY_BYTES = 24
"""The specification's minimum for a symmetric key (192 bits)..."""
MAX_KEY_BYTES = 64
"""...and its maximum (512 bits)."""
CLOUDEVENTS_TYPE_PREFIX = "io.driftwatch."
BATCH_TYPE = "drift.batch"
JSON_TYPE = "application/json"
CLOUDEVENTS_JSON_TYPE = "application/cloudevents+json"
EXCERPT_BYTES = 4096
"""How much of a failed answer is read for the reason (``outcome_of`` cuts it further)."""

_RESERVED_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "host"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP field name (RFC 9110 ``token``)."""
_SENSITIVE_HEADER = re.compile(r"auth|cookie|token|key|secret|passw|signature|credential", re.I)
"""Custom headers whose values :meth:`WebhookReceiver.secrets` lists for redaction."""


def signing_key(value: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for; ``ValueError`` (never showing it) if it
    is not one."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r} (a Standard Webhooks secret)")
    encoded = value[len(SECRET_PREFIX) :].rstrip("=")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX!r} followed by base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"must encode {MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes, not {len(key)}"
        )
    return key


def _check_secret(value: SecretStr) -> SecretStr:
    signing_key(value.get_secret_value())
    return value


SigningSecret = Annotated[SecretStr, AfterValidator(_check_secret)]


class WebhookConfig(SecretFileModel):
    """``type: webhook``: POST the signed incident body to an HTTP endpoint."""

    # Inputs stay out of ValidationError texts: secrets, and tokens in URLs.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str = Field(min_length=1)
    """The endpoint (``http://`` or ``https://``). Redirects are not followed. Reasons in
    logs show only its scheme, host, port and path."""
    secret: SecretStr | None = None
    """The signing secret, ``whsec_`` and base64 of 24 to 64 random bytes (as Standard
    Webhooks libraries generate them). May be given as ``secret_file``."""
    secrets: list[SigningSecret] = Field(default_factory=list)
    """More signing secrets, for rotation: the body is signed with every secret (``secret``
    first) and all signatures are sent, so a consumer holding any one of them accepts it.
    At least one secret in all is required."""
    cloudevents: bool = False
    """Wrap the body in a CloudEvents 1.0 event (structured mode,
    ``application/cloudevents+json``) instead of sending it bare."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (an ``Authorization`` for a gateway in front of the consumer).
    They may not set ``webhook-*``, ``Content-Type``, ``Content-Length``,
    ``Transfer-Encoding`` or ``Host``."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds for one request, connect to last byte; the notifier's default if unset."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = URL(value)
        except (TypeError, ValueError):
            raise ValueError("must be an http:// or https:// URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _check_secret(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name, text in value.items():
            lower = name.lower()
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if lower in _RESERVED_HEADERS or lower.startswith("webhook-"):
                raise ValueError(f"{name!r} is set by the receiver itself and cannot be given")
            if lower in seen:
                raise ValueError(f"{name!r} is given twice (header names ignore case)")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"the value of {name!r} contains a line break or NUL")
            seen.add(lower)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WebhookConfig:
        if self.secret is None and not self.secrets:
            raise ValueError("give a signing secret: secret, secret_file or secrets")
        url = URL(self.url)
        if (url.raw_user or url.raw_password) and "authorization" in map(str.lower, self.headers):
            # aiohttp turns user info into an Authorization header and refuses both.
            raise ValueError("give credentials in the url or an Authorization header, not both")
        return self

    def signing_secrets(self) -> list[str]:
        """Every signing secret, ``secret`` first."""
        given = ([self.secret] if self.secret is not None else []) + list(self.secrets)
        return [s.get_secret_value() for s in given]


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks ``v1`` signature: ``v1,`` and base64 of HMAC-SHA256 over
    ``"{msg_id}.{timestamp}.{body}"``."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _envelope(notification: Notification) -> dict[str, Any]:
    """The CloudEvents 1.0 event (JSON format) carrying ``notification.body``."""
    body = notification.body
    event_type = str(body.get("type") or f"drift.{notification.kind}")
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": notification.id,
        "source": "driftwatch/" + quote(str(body.get("cluster") or ""), safe=""),
        "type": CLOUDEVENTS_TYPE_PREFIX + event_type,
        "datacontenttype": JSON_TYPE,
    }
    if body.get("namespace") and body.get("name"):
        event["subject"] = f"{body['namespace']}/{body['name']}"
    if body.get("occurred_at"):
        event["time"] = str(body["occurred_at"])
    event["data"] = body
    return event


def _latest(stamps: Iterable[object]) -> str | None:
    """The latest of RFC 3339 times (as given); unreadable ones are skipped."""
    latest: tuple[datetime, str] | None = None
    for stamp in stamps:
        try:
            moment = datetime.fromisoformat(str(stamp))
        except ValueError:
            continue
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if latest is None or moment > latest[0]:
            latest = (moment, str(stamp))
    return None if latest is None else latest[1]


def batch_body(batch: Batch, *, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """``{"schema_version": 1, "type": "drift.batch", "batch_id", "occurred_at",
    "incidents": [...]}``: the incident bodies in the order they opened; ``occurred_at``
    the latest of theirs (``now`` if none is readable)."""
    bodies = [n.body for n in batch.notifications]
    occurred = _latest(b.get("occurred_at") for b in bodies if b.get("occurred_at"))
    if occurred is None:
        occurred = datetime.fromtimestamp(now(), UTC).isoformat(timespec="seconds")
    return {
        "schema_version": SCHEMA_VERSION,
        "type": BATCH_TYPE,
        "batch_id": batch.id,
        "occurred_at": occurred,
        "incidents": bodies,
    }


def _batch_envelope(batch: Batch, body: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvents 1.0 event carrying a batch's ``body`` (no ``subject``: it is about
    several policies)."""
    clusters = {str(n.body.get("cluster") or "") for n in batch.notifications}
    cluster = clusters.pop() if len(clusters) == 1 else ""
    return {
        "specversion": "1.0",
        "id": batch.id,
        "source": "driftwatch/" + quote(cluster, safe=""),
        "type": CLOUDEVENTS_TYPE_PREFIX + BATCH_TYPE,
        "datacontenttype": JSON_TYPE,
        "time": body["occurred_at"],
        "data": body,
    }


def _json(payload: object, *, cloudevents: bool) -> tuple[bytes, str]:
    """Compact JSON (exactly the bytes signed) and its content type."""
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=_jsonable)
    return data.encode("ascii"), CLOUDEVENTS_JSON_TYPE if cloudevents else JSON_TYPE


def encode(notification: Notification, *, cloudevents: bool = False) -> tuple[bytes, str]:
    """The request body (compact JSON: exactly the bytes signed) and its content type."""
    payload = _envelope(notification) if cloudevents else notification.body
    return _json(payload, cloudevents=cloudevents)


def encode_batch(
    batch: Batch, *, cloudevents: bool = False, now: Callable[[], float] = time.time
) -> tuple[bytes, str]:
    """A batch's request body (:func:`batch_body`, or its CloudEvent) and content type."""
    body = batch_body(batch, now=now)
    return _json(_batch_envelope(batch, body) if cloudevents else body, cloudevents=cloudevents)


def public_url(url: str | URL) -> str:
    """``url`` without user info, query and fragment (which may hold tokens)."""
    parsed = URL(url) if isinstance(url, str) else url
    return str(parsed.with_user(None).with_query(None).with_fragment(None))


class WebhookReceiver:
    """Posts each notification or batch, signed (see the module's docstring)."""

    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        ctx: ReceiverContext,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._config = config
        self._url = URL(config.url)
        self._secrets = config.signing_secrets()
        self._keys = [signing_key(s) for s in self._secrets]
        self._session = ctx.session
        self._timeout = aiohttp.ClientTimeout(total=config.timeout or ctx.timeout)
        self._clock = clock
        self._what = f"webhook {public_url(self._url)}"

    async def deliver(self, notification: Notification) -> Outcome:
        try:
            data, content_type = encode(notification, cloudevents=self._config.cloudevents)
        except (TypeError, ValueError) as e:
            return Outcome.fail(f"{self._what}: the notification's body is not JSON: {e}")
        return await self._send(notification.id, data, content_type)

    async def deliver_batch(self, batch: Batch) -> Outcome:
        """One ``drift.batch`` for every incident of ``batch``; ``webhook-id`` its id."""
        try:
            data, content_type = encode_batch(
                batch, cloudevents=self._config.cloudevents, now=self._clock
            )
        except (TypeError, ValueError) as e:
            return Outcome.fail(f"{self._what}: a notification's body is not JSON: {e}")
        return await self._send(batch.id, data, content_type)

    async def _send(self, msg_id: str, data: bytes, content_type: str) -> Outcome:
        """One signed ``POST`` of ``data`` as message ``msg_id``, and what it came to."""
        timestamp = int(self._clock())
        headers = {
            **self._config.headers,
            "Content-Type": content_type,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(
                signature(key, msg_id, timestamp, data) for key in self._keys
            ),
        }
        try:
            async with self._session.post(
                self._config.url,
                data=data,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status, answer = response.status, response.headers
                raw = b"" if 200 <= status < 300 else await response.content.read(EXCERPT_BYTES)
        except TimeoutError:
            return Outcome.retry(f"{self._what} did not answer within {self._timeout.total:g} s")
        except aiohttp.ClientError as e:
            return Outcome.retry(self._redact(f"{self._what} unreachable: {type(e).__name__}: {e}"))
        if 300 <= status < 400:
            return Outcome.fail(self._redirect(status, answer.get("Location")))
        text = raw.decode("utf-8", errors="replace")
        outcome = outcome_of(status, answer, text, what=self._what)
        reason = self._redact(outcome.reason)
        if status == 410:
            return Outcome.gone(
                f"{reason}; the endpoint asked for no more webhooks (410 Gone), so receiver "
                f"{self.name!r} is disabled: fix or remove it in the configuration"
            )
        return dataclasses.replace(outcome, reason=reason)

    def _redirect(self, status: int, location: str | None) -> str:
        target = "an unnamed location"
        if location:
            try:
                host = URL(location).host or self._url.host
            except (TypeError, ValueError):
                host = None
            target = f"host {host}" if host else "an unreadable location"
        return (
            f"{self._what} answered {status}, a redirect to {target}: redirects are not "
            "followed; point the url at the final address"
        )

    def _redact(self, text: str) -> str:
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return text

    async def close(self) -> None:
        """Nothing of its own to release: the session is shared."""

    def secrets(self) -> Iterable[str]:
        """The signing secrets; when the URL has user info or a query, the URL and those
        parts; the values of custom headers that look like credentials (``Authorization``,
        ``X-Api-Key``, ...)."""
        yield from self._secrets
        url = self._url
        if url.raw_user or url.raw_password or url.raw_query_string:
            yield self._config.url
            # A user name alone is often the token (https://TOKEN@host); beside a password
            # it is only a name.
            parts = (url.raw_password, url.password) if url.password else (url.raw_user, url.user)
            yield from dict.fromkeys(p for p in parts if p)
            if url.raw_query_string:
                yield url.raw_query_string
        for name, value in self._config.headers.items():
            if value and _SENSITIVE_HEADER.search(name):
                yield value


def build(name: str, config: WebhookConfig, ctx: ReceiverContext) -> WebhookReceiver:
    """``ReceiverType.build`` for ``type: webhook``."""
    return WebhookReceiver(name, config, ctx)


RECEIVER = ReceiverType("webhook", WebhookConfig, build, batches=True)
"""The ``webhook`` receiver type, for ``notify.registry``."""
