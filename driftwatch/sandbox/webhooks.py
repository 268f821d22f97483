"""``admissionregistration.k8s.io/v1`` ValidatingWebhookConfigurations: defaulting,
validation and matching, as the real server does them.

Stored with the API defaults (``failurePolicy: Fail``, ``matchPolicy: Equivalent``, empty
``namespaceSelector``/``objectSelector``, ``timeoutSeconds: 10``, rule ``scope: "*"``,
service ``port: 443``) and validated field by field (422 naming the field: three-segment
webhook names, unique names, ``sideEffects`` and ``admissionReviewVersions`` required,
exactly one of ``clientConfig.url`` (https) and ``clientConfig.service``, timeouts 1-30 s,
rule operations and scopes, label selectors, ``caBundle`` as base64).
``matchConditions`` (CEL) are refused: the sandbox cannot evaluate them.
:func:`unknown_fields` lists fields the schema does not have, for ``fieldValidation``.

:func:`matches` decides whether one webhook is called for a request (rules, scope,
``namespaceSelector``, ``objectSelector``); :mod:`driftwatch.sandbox.admission` calls it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from driftwatch.policy import PolicyError
from driftwatch.policy.parse import parse_label_selector
from driftwatch.sandbox.errors import FieldCause, bad_request, invalid
from driftwatch.sandbox.resources import ResourceType

__all__ = ["ca_bundle", "matches", "prepare_webhook_configuration", "unknown_fields"]

Obj = dict[str, Any]

_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT", "*")
_SCOPES = ("Cluster", "Namespaced", "*")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_WEBHOOK_FIELDS = frozenset(
    {
        "name",
        "clientConfig",
        "rules",
        "failurePolicy",
        "matchPolicy",
        "namespaceSelector",
        "objectSelector",
        "sideEffects",
        "timeoutSeconds",
        "admissionReviewVersions",
        "matchConditions",
    }
)
_CLIENT_FIELDS = frozenset({"url", "service", "caBundle"})
_SERVICE_FIELDS = frozenset({"namespace", "name", "path", "port"})
_RULE_FIELDS = frozenset({"apiGroups", "apiVersions", "operations", "resources", "scope"})
_SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})


def unknown_fields(obj: Obj) -> Iterator[str]:
    """Paths of fields below ``webhooks`` that the v1 schema does not have."""
    webhooks = obj.get("webhooks")
    for i, hook in enumerate(webhooks if isinstance(webhooks, list) else []):
        if not isinstance(hook, dict):
            continue
        base = f"webhooks[{i}]"
        yield from (f"{base}.{k}" for k in hook if k not in _WEBHOOK_FIELDS)
        client = hook.get("clientConfig")
        if isinstance(client, dict):
            yield from (f"{base}.clientConfig.{k}" for k in client if k not in _CLIENT_FIELDS)
            service = client.get("service")
            if isinstance(service, dict):
                yield from (
                    f"{base}.clientConfig.service.{k}" for k in service if k not in _SERVICE_FIELDS
                )
        rules = hook.get("rules")
        for j, rule in enumerate(rules if isinstance(rules, list) else []):
            if isinstance(rule, dict):
                yield from (f"{base}.rules[{j}].{k}" for k in rule if k not in _RULE_FIELDS)
        for key in ("namespaceSelector", "objectSelector"):
            selector = hook.get(key)
            if isinstance(selector, dict):
                yield from (f"{base}.{key}.{k}" for k in selector if k not in _SELECTOR_FIELDS)


class _Checker:
    def __init__(self, rtype: ResourceType, name: str) -> None:
        self.rtype = rtype
        self.name = name
        self.causes: list[FieldCause] = []

    def add(self, path: str, message: str) -> None:
        reason = "FieldValueRequired" if message.startswith("Required") else "FieldValueInvalid"
        self.causes.append((reason, path, message))

    def done(self) -> None:
        if self.causes:
            raise invalid(self.rtype.kind, self.rtype.group, self.name, self.causes)


def _fail_decode(rtype: ResourceType, detail: str) -> NoReturn:
    raise bad_request(
        f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: {detail}'
    )


def _strings(check: _Checker, value: Any, path: str, allowed: tuple[str, ...] = ()) -> None:
    if not isinstance(value, list) or not value:
        check.add(path, "Required value")
        return
    for k, item in enumerate(value):
        if not isinstance(item, str) or not item:
            check.add(f"{path}[{k}]", "Required value")
        elif allowed and item not in allowed:
            supported = ", ".join(f'"{a}"' for a in allowed)
            check.add(f"{path}[{k}]", f'Unsupported value: "{item}": supported values: {supported}')


def _enum(check: _Checker, hook: Obj, key: str, path: str, allowed: tuple[str, ...]) -> None:
    value = hook.get(key)
    if value not in allowed:
        supported = ", ".join(f'"{a}"' for a in allowed)
        shown = f'"{value}"' if isinstance(value, str) else str(value)
        check.add(f"{path}.{key}", f"Unsupported value: {shown}: supported values: {supported}")


def _client(check: _Checker, client: Any, path: str) -> None:
    if not isinstance(client, dict):
        check.add(path, "Required value: exactly one of url or service is required")
        return
    url, service = client.get("url"), client.get("service")
    if (url is None) == (service is None):
        check.add(path, "Required value: exactly one of url or service is required")
    if url is not None:
        if not isinstance(url, str) or not url.startswith("https://"):
            scheme = url.partition("://")[0] if isinstance(url, str) else url
            check.add(f"{path}.url", f'Unsupported value: "{scheme}": supported values: "https"')
        elif any(c in url for c in "#?@"):
            check.add(f"{path}.url", "Invalid value: fragments, query and user info not allowed")
    if isinstance(service, dict):
        for key in ("namespace", "name"):
            if not isinstance(service.get(key), str) or not service[key]:
                check.add(
                    f"{path}.service.{key}", "Required value: service " + key + " is required"
                )
        service.setdefault("port", 443)
        port = service["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            check.add(f"{path}.service.port", f"Invalid value: {port}: port is not valid")
        route = service.get("path")
        if route is not None and (not isinstance(route, str) or not route.startswith("/")):
            check.add(f"{path}.service.path", f"Invalid value: \"{route}\": must start with a '/'")
    elif service is not None:
        check.add(f"{path}.service", "Invalid value: must be an object")
    bundle = client.get("caBundle")
    if bundle is not None and ca_bundle(bundle) is None:
        _fail_decode(check.rtype, f"{path}.caBundle: illegal base64 data")


def _rules(check: _Checker, rules: Any, path: str) -> None:
    if rules is None:
        return
    if not isinstance(rules, list):
        check.add(path, "Invalid value: must be a list")
        return
    for j, rule in enumerate(rules):
        where = f"{path}[{j}]"
        if not isinstance(rule, dict):
            check.add(where, "Invalid value: must be an object")
            continue
        _strings(check, rule.get("operations"), f"{where}.operations", _OPERATIONS)
        for key in ("apiGroups", "apiVersions", "resources"):
            _strings(check, rule.get(key), f"{where}.{key}")
        rule.setdefault("scope", "*")
        _enum(check, rule, "scope", where, _SCOPES)


def _webhook(check: _Checker, hook: Any, path: str, seen: set[str]) -> None:
    if not isinstance(hook, dict):
        check.add(path, "Invalid value: must be an object")
        return
    name = hook.get("name")
    if not isinstance(name, str) or not name:
        check.add(f"{path}.name", "Required value")
    elif not _DNS_SUBDOMAIN.fullmatch(name) or name.count(".") < 2 or len(name) > 253:
        check.add(
            f"{path}.name",
            f'Invalid value: "{name}": should be a domain with at least three segments '
            "separated by dots",
        )
    elif name in seen:
        check.add(f"{path}.name", f'Duplicate value: "{name}"')
    else:
        seen.add(name)
    _client(check, hook.get("clientConfig"), f"{path}.clientConfig")
    _rules(check, hook.get("rules"), f"{path}.rules")
    hook.setdefault("failurePolicy", "Fail")
    _enum(check, hook, "failurePolicy", path, ("Fail", "Ignore"))
    hook.setdefault("matchPolicy", "Equivalent")
    _enum(check, hook, "matchPolicy", path, ("Exact", "Equivalent"))
    if hook.get("sideEffects") is None:
        check.add(f"{path}.sideEffects", "Required value: must specify one of None, NoneOnDryRun")
    else:
        _enum(check, hook, "sideEffects", path, ("None", "NoneOnDryRun"))
    versions = hook.get("admissionReviewVersions")
    if not isinstance(versions, list) or not {"v1", "v1beta1"} & set(versions):
        check.add(
            f"{path}.admissionReviewVersions", "Required value: must specify one of v1, v1beta1"
        )
    hook.setdefault("timeoutSeconds", 10)
    timeout = hook["timeoutSeconds"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 30:
        check.add(
            f"{path}.timeoutSeconds",
            f"Invalid value: {timeout}: the timeout value must be between 1 and 30 seconds",
        )
    for key in ("namespaceSelector", "objectSelector"):
        selector = hook.setdefault(key, {})
        try:
            parse_label_selector(selector, f"{path}.{key}")
        except PolicyError as error:
            check.add(error.path or f"{path}.{key}", f"Invalid value: {error.message}")
    if hook.get("matchConditions"):
        check.add(
            f"{path}.matchConditions",
            "Forbidden: the sandbox cannot evaluate CEL match conditions",
        )


def prepare_webhook_configuration(rtype: ResourceType, obj: Obj) -> Obj:
    """Default and validate a ValidatingWebhookConfiguration (``obj`` is modified)."""
    check = _Checker(rtype, str(obj["metadata"].get("name", "")))
    webhooks = obj.get("webhooks")
    if webhooks is not None and not isinstance(webhooks, list):
        _fail_decode(rtype, "json: cannot unmarshal object into Go struct field .webhooks")
    seen: set[str] = set()
    for i, hook in enumerate(webhooks or []):
        _webhook(check, hook, f"webhooks[{i}]", seen)
    check.done()
    return obj


def ca_bundle(value: Any) -> str | None:
    """The PEM text of a ``caBundle`` (base64 of PEM), or None when it is not base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _resource_matches(pattern: str, resource: str, subresource: str) -> bool:
    """A rule's ``resources`` entry against ``plural`` or ``plural/sub``."""
    if pattern == "*/*":
        return True
    if pattern == "*":
        return not subresource
    name, _, sub = pattern.partition("/")
    if sub:
        return (name in ("*", resource)) and (sub in ("*", subresource)) and bool(subresource)
    return name == resource and not subresource


def _rule_matches(rule: Obj, rtype: ResourceType, operation: str, subresource: str) -> bool:
    def has(key: str, value: str) -> bool:
        listed = rule.get(key) or []
        return "*" in listed or value in listed

    scope = rule.get("scope", "*")
    if scope != "*" and (scope == "Namespaced") != rtype.namespaced:
        return False
    return (
        has("operations", operation)
        and has("apiGroups", rtype.group)
        and has("apiVersions", rtype.version)
        and any(_resource_matches(p, rtype.plural, subresource) for p in rule.get("resources", []))
    )


def _selects(selector: Any, labels: Mapping[str, str]) -> bool:
    try:
        return parse_label_selector(selector or {}).matches(labels)
    except PolicyError:
        return False


def _labels(obj: Obj | None) -> dict[str, str]:
    labels = (obj or {}).get("metadata", {}).get("labels")
    return dict(labels) if isinstance(labels, dict) else {}


def matches(
    hook: Obj,
    rtype: ResourceType,
    operation: str,
    subresource: str,
    *,
    namespace_labels: Mapping[str, str] | None,
    obj: Obj | None,
    old: Obj | None,
) -> bool:
    """Whether ``hook`` is called: a rule matches, the ``namespaceSelector`` selects the
    object's namespace (for a Namespace, the object itself; other cluster-scoped kinds
    always pass), and the ``objectSelector`` selects the object or the old object.
    ``namespace_labels``: the labels of the object's namespace (``None``: none applies)."""
    if not any(_rule_matches(r, rtype, operation, subresource) for r in hook.get("rules") or []):
        return False
    if rtype.kind == "Namespace" and not rtype.group:
        namespace_labels = _labels(obj if obj is not None else old)
    if namespace_labels is not None and not _selects(
        hook.get("namespaceSelector"), namespace_labels
    ):
        return False
    selector = hook.get("objectSelector")
    return any(_selects(selector, _labels(o)) for o in (obj, old) if o is not None)
