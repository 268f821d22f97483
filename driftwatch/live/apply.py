"""Writing NetworkPolicies: remediation puts Git's version back. The only writes driftwatch
makes to the cluster.

* :meth:`PolicyWriter.apply` re-applies the desired policy with server-side apply (PATCH
  ``application/apply-patch+yaml``, field manager ``driftwatch``, ``force=true``, the body
  :func:`~driftwatch.policy.to_manifest` renders), which recreates a missing one too. Apply
  only takes over the fields it sets: when the answer still differs from Git (a label, an
  annotation or a field another manager set and Git does not have), a JSON merge patch
  removes those, so the result equals Git.
* :meth:`PolicyWriter.delete` deletes a policy Git does not have (gone already: fine).
* :meth:`PolicyWriter.denied` asks ``SelfSubjectAccessReview`` which of the write verbs
  the credentials lack.

Every failure is a :class:`~driftwatch.live.errors.LiveError`; a 403 names the verb, the
namespace and the RBAC that grants it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, AuthorizationV1Api, NetworkingV1Api

from driftwatch.live.errors import (
    LiveAccessError,
    LiveApiError,
    LiveError,
    LiveInvalidError,
    LiveNotFoundError,
    LiveUnavailableError,
)
from driftwatch.policy import LAST_APPLIED, NetworkPolicy, PolicyError, parse_policy, to_manifest

__all__ = [
    "FIELD_MANAGER",
    "REMEDIATION_RBAC",
    "WRITE_VERBS",
    "Applied",
    "PolicyWriter",
    "merge_patch_to",
]

FIELD_MANAGER = "driftwatch"
"""driftwatch's field manager: its writes show as ``driftwatch`` in ``managedFields``."""
WRITE_VERBS = ("patch", "create", "delete")
"""What reverting needs on ``networkpolicies.networking.k8s.io``."""
REMEDIATION_RBAC = (
    "the driftwatch-remediation ClusterRole bound to driftwatch's ServiceAccount"
    " (kubectl apply -f config/kubernetes/remediation-clusterrole.yaml"
    " -f config/kubernetes/remediation-clusterrolebinding.yaml)"
)
"""What grants :data:`WRITE_VERBS`, for error messages."""
_RESOURCE = "networkpolicies.networking.k8s.io"
_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"
_ERROR_BODY_LIMIT = 64 * 1024

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`PolicyWriter.apply` left in the cluster."""

    policy: NetworkPolicy
    """The policy as the server stored it (``== desired`` unless something on the server,
    such as a mutating admission webhook, changed it)."""
    resource_versions: tuple[str, ...]
    """The resourceVersion of each write made (the apply, then the clean-up patch if one
    was needed): the watch events that are driftwatch's own."""


def merge_patch_to(live: Any, want: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``live`` into ``want``: maps are compared
    key by key (a key ``want`` lacks becomes ``null``), anything else is replaced."""
    if not isinstance(live, Mapping) or not isinstance(want, Mapping):
        return want
    patch: Obj = {key: None for key in live if key not in want}
    for key, value in want.items():
        if key not in live:
            patch[key] = value
        elif live[key] != value:
            patch[key] = merge_patch_to(live[key], value)
    return patch


def _compared(obj: Mapping[str, Any]) -> Obj:
    """The parts of a NetworkPolicy object drift compares: labels, annotations, spec."""
    meta = obj.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    return {
        "metadata": {"labels": dict(meta.get("labels") or {}), "annotations": annotations},
        "spec": obj.get("spec") or {},
    }


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _status_of(body: bytes) -> tuple[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "", body.decode("utf-8", "replace").strip()[:200]
    if not isinstance(data, Mapping):
        return "", ""
    return str(data.get("reason") or ""), str(data.get("message") or "")[:300]


class PolicyWriter:
    """Writes NetworkPolicies through ``api`` as field manager ``driftwatch``."""

    def __init__(self, api: ApiClient, *, timeout: float = 30.0) -> None:
        self._policies: Any = NetworkingV1Api(api)
        self._reviews: Any = AuthorizationV1Api(api)
        self.server = str(api.configuration.host)
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    # --- writes -------------------------------------------------------------------------

    async def apply(self, desired: NetworkPolicy) -> Applied:
        """Put ``desired`` in the cluster (create it if absent). Raises :class:`LiveError`."""
        ns, name = desired.namespace, desired.name
        manifest = to_manifest(desired)
        answer = await self._call(
            "patch",
            ns,
            name,
            lambda **kw: self._policies.patch_namespaced_network_policy(
                name, ns, manifest, field_manager=FIELD_MANAGER, force=True, **kw
            ),
            content_type=_APPLY,
        )
        stored = self._parse(answer, ns, name)
        versions = [_version(answer)]
        if stored == desired:
            return Applied(stored, tuple(versions))
        # Fields other managers still hold and Git does not have: apply leaves them.
        patch = merge_patch_to(_compared(answer), _compared(manifest))
        answer = await self._call(
            "patch",
            ns,
            name,
            lambda **kw: self._policies.patch_namespaced_network_policy(
                name, ns, patch, field_manager=FIELD_MANAGER, **kw
            ),
            content_type=_MERGE,
        )
        versions.append(_version(answer))
        return Applied(self._parse(answer, ns, name), tuple(versions))

    def _parse(self, answer: Obj, namespace: str, name: str) -> NetworkPolicy:
        try:
            return parse_policy(answer, default_namespace=namespace)
        except PolicyError as error:
            raise LiveInvalidError(
                f"the Kubernetes API server at {self.server} stored {namespace}/{name} in a"
                f" form driftwatch cannot read: {error}"
            ) from error

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete the policy; ``False`` when it was already gone. Raises :class:`LiveError`."""
        try:
            await self._call(
                "delete",
                namespace,
                name,
                lambda **kw: self._policies.delete_namespaced_network_policy(name, namespace, **kw),
            )
        except LiveNotFoundError:
            return False
        return True

    # --- access -------------------------------------------------------------------------

    async def denied(
        self, namespaces: Sequence[str] | None, verbs: Sequence[str] = WRITE_VERBS
    ) -> list[tuple[str, str | None]]:
        """The (verb, namespace) pairs of ``verbs`` on NetworkPolicies that the credentials
        lack, asked with ``SelfSubjectAccessReview``; ``namespaces`` None: cluster-wide
        (namespace ``None`` in the answer)."""
        scopes: Sequence[str | None] = list(namespaces) if namespaces is not None else [None]
        missing: list[tuple[str, str | None]] = []
        for namespace in scopes:
            for verb in verbs:
                attributes = {"group": "networking.k8s.io", "resource": "networkpolicies"}
                attributes["verb"] = verb
                if namespace is not None:
                    attributes["namespace"] = namespace
                body = {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": attributes},
                }
                answer = await self._call(
                    "create selfsubjectaccessreviews for",
                    namespace,
                    None,
                    lambda body=body, **kw: self._reviews.create_self_subject_access_review(
                        body, **kw
                    ),
                )
                status = answer.get("status")
                if not (isinstance(status, Mapping) and status.get("allowed") is True):
                    missing.append((verb, namespace))
        return missing

    # --- requests -----------------------------------------------------------------------

    async def _call(
        self,
        verb: str,
        namespace: str | None,
        name: str | None,
        request: Callable[..., Awaitable[Any]],
        *,
        content_type: str | None = None,
    ) -> Obj:
        extra: Obj = {"_preload_content": False, "_request_timeout": self._timeout}
        if content_type is not None:
            extra["_content_type"] = content_type
        server = f"the Kubernetes API server at {self.server}"
        try:
            response = await request(**extra)
            if not isinstance(response, aiohttp.ClientResponse):
                raise TypeError(f"kubernetes_asyncio returned {type(response).__name__}")
            try:
                body = await response.read()
            finally:
                response.release()
        except aiohttp.ClientError as error:
            detail = str(error) or type(error).__name__
            raise LiveUnavailableError(
                f"cannot reach {server}: {detail}", reason="unreachable"
            ) from error
        except TimeoutError:
            raise LiveUnavailableError(
                f"{server} did not answer within {self._timeout.total:g} s",
                reason="read_timeout",
            ) from None
        if 200 <= response.status < 300:
            try:
                data = json.loads(body)
            except (ValueError, RecursionError) as error:
                raise LiveApiError(f"{server} sent an answer that is not JSON") from error
            if not isinstance(data, dict):
                raise LiveApiError(f"{server} sent an answer that is not an object")
            return data
        reason, message = _status_of(body[:_ERROR_BODY_LIMIT])
        said = f"{response.status} {reason or response.reason or ''}".strip()
        if message and message != reason:
            said = f"{said}: {message}"
        raise self._error(response.status, said, verb, namespace, name)

    def _error(
        self, code: int, said: str, verb: str, namespace: str | None, name: str | None
    ) -> LiveError:
        server = f"the Kubernetes API server at {self.server}"
        what = f"{namespace}/{name}" if name else f"{_RESOURCE} in namespace {namespace}"
        if name is None and namespace is None:
            what = f"{_RESOURCE} cluster-wide"
        if code == 401:
            return LiveAccessError(f"{server} rejected driftwatch's credentials ({said})")
        if code == 403:
            return LiveAccessError(
                f"{server} forbids driftwatch to {verb} NetworkPolicy {what} ({said});"
                f" reverting needs {', '.join(WRITE_VERBS)} on {_RESOURCE}: {REMEDIATION_RBAC}"
            )
        if code == 404:
            return LiveNotFoundError(f"{server}: {verb} NetworkPolicy {what}: {said}")
        if code == 429 or code >= 500 or code == 408:
            return LiveUnavailableError(
                f"{server} failed to {verb} NetworkPolicy {what} ({said})", reason="server_error"
            )
        return LiveApiError(f"{server} answered {said} to {verb} NetworkPolicy {what}")
