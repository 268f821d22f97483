"""Validating admission webhooks: the sandbox calls them on writes, as the real server does.

For a write through the HTTP API (create, update, patch, apply, delete, deletecollection)
of a resource that a stored ValidatingWebhookConfiguration's webhook matches (see
:func:`driftwatch.sandbox.webhooks.matches`), the sandbox works out the object the write
would store (a dry run of the same write: defaults applied, validated), POSTs an
``AdmissionReview`` (``admission.k8s.io/v1``) to each matching webhook at once over HTTPS
(``clientConfig.url``, or ``clientConfig.service`` through :attr:`Admission.services`,
which maps ``<name>.<namespace>.svc:<port>`` to a loopback ``host:port``; the certificate
is checked against ``caBundle`` and the service's DNS name), and then:

- a denial is the real server's error: ``admission webhook "<name>" denied the request:
  <message>`` with the webhook's status code (at least 400) and reason;
- a webhook that cannot be called, times out (``timeoutSeconds``) or answers nonsense is
  skipped under ``failurePolicy: Ignore`` and is a 500 ``failed calling webhook`` under
  ``Fail``;
- warnings become ``Warning: 299 - "<text>"`` response headers (kubectl prints them);
- otherwise the write is done for real, unless the object changed meanwhile (then the
  whole admission runs again, as the real server retries a conflicting update).

``request.userInfo`` is the request's user: the ``Impersonate-User`` (and
``Impersonate-Group``) headers (``kubectl --as``), else the user of the bearer token, else
``system:anonymous`` (kubectl sends no token over plain HTTP). ``request.options`` carries
the ``fieldManager`` of the query. Writes through the Python object API
(:meth:`~driftwatch.sandbox.server.Sandbox.put_object`, seeding) are not admitted, and
ValidatingWebhookConfigurations themselves never are (as on the real server).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import ssl
import uuid
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from driftwatch.sandbox.errors import ApiError
from driftwatch.sandbox.operations import WriteResult
from driftwatch.sandbox.resources import NAMESPACES, VALIDATING_WEBHOOK_CONFIGURATIONS, ResourceType
from driftwatch.sandbox.selectors import Selector
from driftwatch.sandbox.store import Store
from driftwatch.sandbox.webhooks import ca_bundle, matches

__all__ = ["ANONYMOUS", "Admission", "ReviewContext", "UserInfo", "request_user", "token_user"]

log = logging.getLogger("driftwatch.sandbox")

Obj = dict[str, Any]
ADMISSION_V1 = "admission.k8s.io/v1"
MAX_ATTEMPTS = 5
"""Admission runs again when the object changed while webhooks answered; at most this often."""
_OPTIONS = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


@dataclass(frozen=True, slots=True)
class UserInfo:
    """``request.userInfo``."""

    username: str
    groups: tuple[str, ...] = ()

    def to_json(self) -> Obj:
        return {"username": self.username, "groups": list(self.groups)}


ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))


def token_user(tokens: Mapping[str, str], authorization: str | None) -> str | None:
    """The user name of an ``Authorization: Bearer <token>`` header's token among
    ``tokens`` (token -> user name; compared in constant time), or None."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    found = None
    for known, username in tokens.items():
        if hmac.compare_digest(presented.strip().encode(), known.encode()):
            found = username
    return found


def request_user(headers: CIMultiDictProxy[str], tokens: Mapping[str, str]) -> UserInfo:
    """Who makes a request: the impersonated user (``kubectl --as``; the sandbox does not
    check that impersonation is allowed), else the bearer token's user (``tokens``: token
    -> user name), else anonymous."""
    username = token_user(tokens, headers.get("Authorization"))
    impersonated = headers.get("Impersonate-User")
    if impersonated:
        groups = list(headers.getall("Impersonate-Group", []))
        prefix = "system:serviceaccount:"
        if impersonated.startswith(prefix) and not groups:
            namespace = impersonated[len(prefix) :].partition(":")[0]
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        return UserInfo(impersonated, (*groups, "system:authenticated"))
    if username is not None:
        return UserInfo(username, ("system:masters", "system:authenticated"))
    return ANONYMOUS


@dataclass(frozen=True, slots=True)
class ReviewContext:
    """What an ``AdmissionReview`` tells about the request besides the objects."""

    user: UserInfo = ANONYMOUS
    field_manager: str | None = None
    """``fieldManager`` as given in the query (not the server's fallback)."""
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class _Outcome:
    allowed: bool = True
    status: Obj = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    error: str | None = None
    """Why the webhook could not be called (then ``failurePolicy`` decides)."""


def _version(obj: Obj | None) -> str | None:
    return None if obj is None else str(obj["metadata"].get("resourceVersion"))


def _unstored(obj: Obj | None) -> Obj | None:
    """The object as a review shows it: a new one has no resourceVersion yet."""
    if obj is None or obj["metadata"].get("resourceVersion"):
        return obj
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


def _denied(name: str, status: Obj) -> ApiError:
    """The real server's error for a denial (``webhookerrors.ToStatusErr``)."""
    denied_by = f'admission webhook "{name}" denied the request'
    message, reason = status.get("message"), status.get("reason")
    if isinstance(message, str) and message:
        text = f"{denied_by}: {message}"
    elif isinstance(reason, str) and reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    code = status.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) and code >= 400 else 400
    details = status.get("details") if isinstance(status.get("details"), dict) else None
    return ApiError(code, reason if isinstance(reason, str) else "", text, details)


class Admission:
    """Calls the stored validating webhooks (see the module docstring)."""

    def __init__(self, store: Store, *, services: MutableMapping[str, str] | None = None) -> None:
        self.store = store
        self.services: MutableMapping[str, str] = services if services is not None else {}
        """``<service>.<namespace>.svc:<port>`` -> the ``host:port`` it is reached at."""
        self.reviews: deque[Obj] = deque(maxlen=1000)
        """The ``AdmissionReview`` requests sent (newest last), for tests."""
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- which webhooks ---------------------------------------------------------------------

    def _configurations(self, rtype: ResourceType) -> list[Obj]:
        if rtype.group == VALIDATING_WEBHOOK_CONFIGURATIONS.group:
            return []  # the real server never sends admission configurations to webhooks
        if self.store.registry.get(*VALIDATING_WEBHOOK_CONFIGURATIONS.key) is None:
            return []
        found = self.store.select(VALIDATING_WEBHOOK_CONFIGURATIONS, None)
        return sorted(found, key=lambda c: str(c["metadata"]["name"]))

    def _hooks(
        self,
        rtype: ResourceType,
        operation: str,
        subresource: str,
        *,
        namespace: str | None,
        obj: Obj | None,
        old: Obj | None,
    ) -> list[Obj]:
        labels: Mapping[str, str] | None = None
        if rtype.namespaced and namespace:
            ns = self.store.get(NAMESPACES, None, namespace)
            labels = (ns or {}).get("metadata", {}).get("labels") or {}
        return [
            hook
            for config in self._configurations(rtype)
            for hook in config.get("webhooks") or []
            if matches(
                hook, rtype, operation, subresource, namespace_labels=labels, obj=obj, old=old
            )
        ]

    # --- the verbs, admitted ------------------------------------------------------------------

    async def write(
        self,
        attempt: Callable[[bool], WriteResult],
        context: ReviewContext,
        rtype: ResourceType,
        *,
        namespace: str | None,
        name: str | None,
        subresource: str = "",
    ) -> WriteResult:
        """Run ``attempt(dry_run)`` (create, update, patch or apply) through admission."""
        if not self._configurations(rtype):
            return attempt(False)
        for _ in range(MAX_ATTEMPTS):
            old = self.store.get(rtype, namespace, name) if name else None
            trial = attempt(True)
            meta = trial.obj["metadata"]
            operation = "CREATE" if trial.created else "UPDATE"
            warnings = await self.review(
                operation,
                rtype,
                namespace=namespace,
                name=str(meta["name"]),
                obj=trial.obj,
                old=None if trial.created else old,
                context=context,
                subresource=subresource,
            )
            if context.dry_run:
                trial.warnings.extend(warnings)
                return trial
            if _version(self.store.get(rtype, namespace, str(meta["name"]))) != _version(old):
                continue  # written meanwhile: admit what this write does now
            result = attempt(False)
            result.warnings.extend(warnings)
            return result
        raise ApiError(409, "Conflict", "the object kept changing while admission webhooks ran")

    async def delete(
        self,
        attempt: Callable[[], Obj],
        context: ReviewContext,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
    ) -> tuple[Obj, list[str]]:
        """Run ``attempt()`` (one delete) through admission; its Status and the warnings."""
        if not self._configurations(rtype):
            return attempt(), []
        for _ in range(MAX_ATTEMPTS):
            old = self.store.get(rtype, namespace, name)
            if old is None:
                return attempt(), []  # 404
            warnings = await self.review(
                "DELETE", rtype, namespace=namespace, name=name, obj=None, old=old, context=context
            )
            if _version(self.store.get(rtype, namespace, name)) == _version(old):
                return attempt(), warnings
        raise ApiError(409, "Conflict", "the object kept changing while admission webhooks ran")

    async def delete_collection(
        self,
        attempt: Callable[[], Obj],
        context: ReviewContext,
        rtype: ResourceType,
        namespace: str | None,
        selector: Selector | None,
    ) -> tuple[Obj, list[str]]:
        """Admit the deletion of every selected object, then run ``attempt()``."""
        warnings: list[str] = []
        if self._configurations(rtype):
            for obj in self.store.select(rtype, namespace, selector):
                meta = obj["metadata"]
                ns, name = meta.get("namespace"), str(meta["name"])
                warnings += await self.review(
                    "DELETE", rtype, namespace=ns, name=name, obj=None, old=obj, context=context
                )
        return attempt(), warnings

    async def review(
        self,
        operation: str,
        rtype: ResourceType,
        *,
        namespace: str | None,
        name: str,
        obj: Obj | None,
        old: Obj | None,
        context: ReviewContext,
        subresource: str = "",
    ) -> list[str]:
        """Call the matching webhooks; their warnings, or raise the denial or failure."""
        hooks = self._hooks(rtype, operation, subresource, namespace=namespace, obj=obj, old=old)
        if not hooks:
            return []
        review = self._review(
            operation,
            rtype,
            namespace=namespace,
            name=name,
            obj=obj,
            old=old,
            context=context,
            subresource=subresource,
        )
        self.reviews.append(review)
        outcomes = await asyncio.gather(*(self._call(hook, review) for hook in hooks))
        warnings: list[str] = []
        failure: ApiError | None = None
        for hook, outcome in zip(hooks, outcomes, strict=True):
            warnings.extend(outcome.warnings)
            if failure is not None:
                continue
            if outcome.error is not None:
                if hook.get("failurePolicy") == "Ignore":
                    log.warning("sandbox: webhook %s ignored: %s", hook["name"], outcome.error)
                    continue
                text = f'failed calling webhook "{hook["name"]}": {outcome.error}'
                failure = ApiError(
                    500,
                    "InternalError",
                    f"Internal error occurred: {text}",
                    {"causes": [{"message": text}]},
                )
            elif not outcome.allowed:
                failure = _denied(str(hook["name"]), outcome.status)
        if failure is not None:
            failure.warnings = warnings
            raise failure
        return warnings

    # --- one call -----------------------------------------------------------------------------

    def _review(
        self,
        operation: str,
        rtype: ResourceType,
        *,
        namespace: str | None,
        name: str,
        obj: Obj | None,
        old: Obj | None,
        context: ReviewContext,
        subresource: str,
    ) -> Obj:
        kind = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
        resource = {"group": rtype.group, "version": rtype.version, "resource": rtype.plural}
        options: Obj = {"kind": _OPTIONS[operation], "apiVersion": "meta.k8s.io/v1"}
        if context.field_manager and operation != "DELETE":
            options["fieldManager"] = context.field_manager
        if context.dry_run:
            options["dryRun"] = ["All"]
        request: Obj = {
            "uid": str(uuid.uuid4()),
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": name,
            "operation": operation,
            "userInfo": context.user.to_json(),
            "object": _unstored(obj),
            "oldObject": old,
            "dryRun": context.dry_run,
            "options": options,
        }
        if subresource:
            request["subResource"] = request["requestSubResource"] = subresource
        if rtype.namespaced and namespace:
            request["namespace"] = namespace
        return {"apiVersion": ADMISSION_V1, "kind": "AdmissionReview", "request": request}

    def _ssl(self, bundle: Any) -> ssl.SSLContext:
        pem = ca_bundle(bundle) if bundle else ""
        key = pem or ""
        context = self._contexts.get(key)
        if context is None:
            context = (
                ssl.create_default_context(cadata=pem) if pem else ssl.create_default_context()
            )
            self._contexts[key] = context
        return context

    def _target(self, client: Obj, timeout: int) -> tuple[str, str, str | None]:
        """(the URL the real server would post to, the URL dialled, the TLS server name)."""
        query = f"?timeout={timeout}s"
        url = client.get("url")
        if isinstance(url, str):
            return url + query, url + query, None
        service = client["service"]
        host = f"{service['name']}.{service['namespace']}.svc"
        authority = f"{host}:{service.get('port', 443)}"
        shown = f"https://{authority}{service.get('path') or ''}{query}"
        address = self.services.get(authority)
        if address is None:
            raise LookupError(f'no endpoints available for service "{service["name"]}"')
        return shown, f"https://{address}{service.get('path') or ''}{query}", host

    async def _call(self, hook: Obj, review: Obj) -> _Outcome:
        client = hook.get("clientConfig") or {}
        timeout = int(hook.get("timeoutSeconds", 10))
        try:
            shown, url, server_name = self._target(client, timeout)
        except LookupError as error:
            return _Outcome(error=f"failed to call webhook: {error}")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                url,
                data=json.dumps(review),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                ssl=self._ssl(client.get("caBundle")),
                server_hostname=server_name,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as answer:
                body = await answer.read()
                status = answer.status
        except TimeoutError:
            return _Outcome(
                error=f'failed to call webhook: Post "{shown}": context deadline exceeded'
            )
        except (aiohttp.ClientError, OSError, ssl.SSLError) as error:
            detail = " ".join(str(error).split()) or type(error).__name__
            return _Outcome(error=f'failed to call webhook: Post "{shown}": {detail}')
        if status != 200:
            return _Outcome(
                error=f"failed to call webhook: the server responded with the status code {status} "
                "but did not return more information"
            )
        return _parse_answer(body, str(review["request"]["uid"]))


def _parse_answer(body: bytes, uid: str) -> _Outcome:
    """The webhook's ``AdmissionReview`` response, checked as the real server checks it."""
    try:
        answer = json.loads(body)
    except ValueError:
        return _Outcome(error="received invalid webhook response: the body is not JSON")
    if not isinstance(answer, dict) or (answer.get("apiVersion"), answer.get("kind")) != (
        ADMISSION_V1,
        "AdmissionReview",
    ):
        return _Outcome(
            error="received invalid webhook response: expected "
            f"{ADMISSION_V1}, Kind=AdmissionReview"
        )
    response = answer.get("response")
    if not isinstance(response, dict):
        return _Outcome(error="received invalid webhook response: response is missing")
    if response.get("uid") != uid:
        return _Outcome(
            error=f'received invalid webhook response: expected response.uid="{uid}", '
            f'got "{response.get("uid")}"'
        )
    raw = response.get("warnings") or []
    warnings = tuple(" ".join(str(w).split()) for w in raw if str(w).strip())
    status = response.get("status")
    return _Outcome(
        allowed=response.get("allowed") is True,
        status=status if isinstance(status, dict) else {},
        warnings=warnings,
    )
