"""Admission decisions: would a write make a NetworkPolicy differ from Git?

The API server sends driftwatch's validating webhook an ``AdmissionReview``
(``admission.k8s.io/v1``) for each NetworkPolicy write it is registered for;
:func:`decide` answers it from the desired state, with driftwatch's own parsing and
normalisation (:func:`~driftwatch.policy.parse_policy`) and comparison
(:func:`~driftwatch.drift.compare`) under the daemon's rule engine. In order:

1. not a NetworkPolicy write (another resource, a subresource, ``CONNECT``): allowed;
2. a namespace that is not protected (:attr:`AdmissionPolicy.namespaces`): allowed;
3. a write by the identity that applies Git (user name or field manager): allowed;
4. the desired state not loaded yet: allowed, with a warning;
5. an object driftwatch cannot parse: allowed, with a warning (the API server validates
   objects, and it will refuse an invalid one itself);
6. the object after the write (absent for ``DELETE``) equal to Git, or left alone by the
   ``ignore`` rules: allowed (so reverting drift always passes);
7. otherwise the write makes the policy drift: ``enforce: deny`` refuses it with a message
   naming the Git source (``path:line@commit``) and the risk (the drift's severity and its
   most severe findings); ``enforce: warn`` allows it with that message as a warning.

Pure code: no I/O, no event loop; :class:`AdmissionPolicy` is a plain value that the
settings layer builds from the ``admission:`` section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from driftwatch.drift.compare import compare
from driftwatch.drift.ignore import IgnoreRules
from driftwatch.drift.model import Drift
from driftwatch.policy import NetworkPolicy, PolicyError, PolicyKey, parse_policy
from driftwatch.rules import RuleEngine, Status

__all__ = [
    "ADMISSION_API_VERSION",
    "AdmissionPolicy",
    "Decision",
    "DesiredLookup",
    "GitIdentities",
    "InvalidReview",
    "ReviewRequest",
    "admission_review",
    "decide",
    "describe",
    "parse_review",
]

ADMISSION_API_VERSION = "admission.k8s.io/v1"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
MAX_FINDINGS = 3
"""Most findings quoted in a message (the most severe ones); the rest are counted."""
MAX_MESSAGE = 1500
"""Longest message or warning (kubectl prints it whole; a long one helps nobody)."""

Enforce = Literal["deny", "warn"]
DesiredLookup = Callable[[str, str], NetworkPolicy | None]
"""``(namespace, name)`` -> the desired policy of that key, ``None`` when Git has none."""
Reason = Literal[
    "not-reviewed",
    "unprotected",
    "git-identity",
    "not-loaded",
    "unparseable",
    "ignored",
    "in-sync",
    "drift",
]


class InvalidReview(ValueError):
    """The request body is not an ``AdmissionReview`` v1 request (answered 400)."""


@dataclass(frozen=True, slots=True)
class GitIdentities:
    """Who applies Git: their writes are always allowed, even when they diverge (the Git
    change is on its way, and driftwatch must never stand between Git and the cluster)."""

    usernames: frozenset[str] = frozenset()
    """``request.userInfo.username`` values (a service account is
    ``system:serviceaccount:<namespace>:<name>``)."""
    field_managers: frozenset[str] = frozenset()
    """``request.options.fieldManager`` values (``kubectl apply --field-manager=...``)."""

    def match(self, username: str | None, field_manager: str | None) -> str | None:
        """Which identity matched (for the log), or ``None``."""
        if username is not None and username in self.usernames:
            return f"user {username}"
        if field_manager is not None and field_manager in self.field_managers:
            return f"field manager {field_manager}"
        return None


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """What the webhook enforces, where, and for whom not."""

    enforce: Enforce = "deny"
    """``deny``: refuse a write that makes a policy differ from Git; ``warn``: allow it
    with a warning (kubectl prints it)."""
    namespaces: tuple[str, ...] = ("*",)
    """Globs of the protected namespaces; writes elsewhere are allowed."""
    identities: GitIdentities = field(default_factory=GitIdentities)
    """The identities that apply Git."""

    def protects(self, namespace: str) -> bool:
        return any(fnmatchcase(namespace, glob) for glob in self.namespaces)


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """The parts of an ``AdmissionReview`` request that the decision reads."""

    uid: str
    operation: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    username: str | None = None
    field_manager: str | None = None
    object: Any = None
    """``request.object`` as sent (``None`` for ``DELETE``)."""
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one review; :meth:`response` is the ``AdmissionReview`` to send."""

    uid: str
    allowed: bool
    reason: Reason
    """Why, in one word (for logs and metrics)."""
    message: str | None = None
    """Why a write was refused (``status.message``), or what a warning says."""
    warnings: tuple[str, ...] = ()
    drift: Drift | None = None
    """The drift the write would cause (``reason == "drift"`` only)."""

    def response(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if not self.allowed:
            answer["status"] = {
                "status": "Failure",
                "code": 403,
                "reason": "Forbidden",
                "message": self.message or "",
            }
        if self.warnings:
            answer["warnings"] = list(self.warnings)
        return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": answer}


def _text(value: Any, where: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise InvalidReview(f"{where} must be a {'non-empty ' if required else ''}string")
    return value


def _mapping(value: Any, where: str, *, required: bool = False) -> Mapping[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidReview(f"{where} must be an object")
    return value


def parse_review(review: Any) -> ReviewRequest:
    """The request of an ``AdmissionReview`` v1; :class:`InvalidReview` if it is none."""
    if not isinstance(review, Mapping):
        raise InvalidReview("the body must be an AdmissionReview object")
    if review.get("apiVersion") != ADMISSION_API_VERSION or review.get("kind") != "AdmissionReview":
        raise InvalidReview(
            f"expected apiVersion {ADMISSION_API_VERSION} and kind AdmissionReview, got "
            f"{review.get('apiVersion')!r} and {review.get('kind')!r}"
        )
    request = _mapping(review.get("request"), "request", required=True)
    uid = _text(request.get("uid"), "request.uid", required=True)
    operation = _text(request.get("operation"), "request.operation", required=True)
    if operation not in OPERATIONS:
        raise InvalidReview(f"request.operation must be one of {', '.join(OPERATIONS)}")
    resource = _mapping(request.get("resource"), "request.resource", required=True)
    user = _mapping(request.get("userInfo"), "request.userInfo")
    options = _mapping(request.get("options"), "request.options")
    obj = request.get("object")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise InvalidReview(f"request.object is required for {operation}")
    username = _text(user.get("username"), "request.userInfo.username") or None
    manager = _text(options.get("fieldManager"), "request.options.fieldManager") or None
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise InvalidReview("request.dryRun must be a boolean")
    return ReviewRequest(
        uid=uid,
        operation=operation,
        group=_text(resource.get("group"), "request.resource.group"),
        resource=_text(resource.get("resource"), "request.resource.resource", required=True),
        subresource=_text(request.get("subResource"), "request.subResource"),
        namespace=_text(request.get("namespace"), "request.namespace"),
        name=_text(request.get("name"), "request.name"),
        username=username,
        field_manager=manager,
        object=obj if operation != "DELETE" else None,
        dry_run=bool(dry_run),
    )


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 1] + "…"


def _risk(drift: Drift) -> str:
    """``severity critical: <the most severe findings' messages>``."""
    worst = drift.severity
    if worst is None:
        return "no rule fired"
    top = [f.message for f in drift.findings if f.severity == worst]
    quoted = "; ".join(top[:MAX_FINDINGS])
    more = len(top) - MAX_FINDINGS
    if more > 0:
        quoted += f" (and {more} more)"
    return f"severity {worst}: {quoted}"


def describe(drift: Drift, operation: str, *, done: bool = False) -> str:
    """What the write does (``done``) or would do, where Git has the policy, and the risk,
    in one line."""
    key = f"{drift.key.namespace}/{drift.key.name}"
    source = drift.source
    if drift.status is Status.UNMANAGED:
        what = f"NetworkPolicy {key} is not in Git (no source to compare with)"
    elif drift.status is Status.MISSING:
        leaves = "leaves" if done else "would leave"
        what = f"deleting NetworkPolicy {key} {leaves} its source in Git ({source}) unapplied"
    else:
        verb = "creating" if operation == "CREATE" else "this change to"
        makes = "makes" if done else "would make"
        what = f"{verb} NetworkPolicy {key} {makes} it differ from its source in Git ({source})"
    return f"{what}; {_risk(drift)}"


def decide(
    review: Any,
    desired: DesiredLookup | None,
    engine: RuleEngine,
    policy: AdmissionPolicy,
    *,
    cluster: str = "default",
    ignore: IgnoreRules | None = None,
) -> Decision:
    """The decision on ``review`` (see the module docstring). ``desired``: look up the
    desired policy of a key, ``None`` while the desired state is not loaded. Raises
    :class:`InvalidReview` for a body that is not an ``AdmissionReview`` v1 request."""
    request = parse_review(review)
    uid = request.uid
    if (
        request.group != "networking.k8s.io"
        or request.resource != "networkpolicies"
        or request.subresource
        or request.operation == "CONNECT"
    ):
        return Decision(uid, True, "not-reviewed")
    namespace = request.namespace
    if not policy.protects(namespace):
        return Decision(uid, True, "unprotected")
    identity = policy.identities.match(request.username, request.field_manager)
    if identity is not None:
        return Decision(uid, True, "git-identity", message=identity)
    if desired is None:
        note = (
            "driftwatch: the desired state is not loaded from Git yet, so this write was not "
            "checked against it"
        )
        return Decision(uid, True, "not-loaded", message=note, warnings=(note,))
    after: NetworkPolicy | None = None
    if request.operation != "DELETE":
        try:
            after = parse_policy(request.object, default_namespace=namespace or "default")
        except PolicyError as error:
            note = _one_line(
                f"driftwatch: cannot read this NetworkPolicy ({error}), so it was not checked "
                "against Git; the API server validates it"
            )
            return Decision(uid, True, "unparseable", message=note, warnings=(note,))
        namespace, name = after.namespace, after.name
    else:
        name = request.name
    want = desired(namespace, name)
    if want is None and after is None:
        return Decision(uid, True, "in-sync")  # deleting what Git does not have
    key = PolicyKey(cluster, namespace, name)
    if ignore is not None and ignore.ignores(key, want, after):
        return Decision(uid, True, "ignored")
    drift = compare(key, want, after, engine)
    if drift.status is Status.IN_SYNC:
        return Decision(uid, True, "in-sync")
    if policy.enforce == "warn":
        warning = _one_line(f"driftwatch: {describe(drift, request.operation, done=True)}")
        return Decision(uid, True, "drift", message=warning, warnings=(warning,), drift=drift)
    text = describe(drift, request.operation)
    message = _one_line(f"{text}. Change it in Git instead (driftwatch admission, enforce: deny)")
    return Decision(uid, False, "drift", message=message, drift=drift)


def admission_review(
    review: Any,
    desired: DesiredLookup | None,
    engine: RuleEngine,
    policy: AdmissionPolicy,
    *,
    cluster: str = "default",
    ignore: IgnoreRules | None = None,
) -> dict[str, Any]:
    """The ``AdmissionReview`` answering ``review`` (:func:`decide`, then the response)."""
    return decide(review, desired, engine, policy, cluster=cluster, ignore=ignore).response()
