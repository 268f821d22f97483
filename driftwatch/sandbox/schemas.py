"""OpenAPI v3 component schemas of the served kinds, named as the real server names them.

Complete for NetworkPolicy and object metadata (kubectl computes ``apply`` patches and
``explain`` output from them); Pod, Namespace and CustomResourceDefinition carry the commonly
used fields and keep unknown ones. Custom kinds get theirs from their CRD
(:func:`custom_schemas`). The list and patch annotations (``x-kubernetes-list-type``,
``x-kubernetes-patch-strategy``, ``x-kubernetes-patch-merge-key``) match the Go types.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMAS", "custom_schemas", "ref", "schema_name"]

Obj = dict[str, Any]

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
NET = "io.k8s.api.networking.v1."
CORE = "io.k8s.api.core.v1."
COORD = "io.k8s.api.coordination.v1."
APIEXT = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
ADMREG = "io.k8s.api.admissionregistration.v1."
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

STR: Obj = {"type": "string", "default": ""}
OPT_STR: Obj = {"type": "string"}
INT32: Obj = {"type": "integer", "format": "int32"}
INT64: Obj = {"type": "integer", "format": "int64"}
BOOL: Obj = {"type": "boolean"}
STR_MAP: Obj = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
LOOSE: Obj = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def schema_name(group: str, version: str, kind: str) -> str:
    """A custom kind's definition name, as the real server writes it: the group reversed
    (``driftwatch.io`` → ``io.driftwatch.v1.DriftIncident``)."""
    return ".".join([*reversed(group.split(".")), version, kind])


def custom_schemas(group: str, version: str, kind: str, schema: Obj) -> dict[str, Obj]:
    """The component schemas of a custom kind and its list, from its ``openAPIV3Schema``:
    ``apiVersion``, ``kind`` and ``metadata`` as on every kind, the rest as written."""
    name = schema_name(group, version, kind)
    item: Obj = {k: v for k, v in schema.items() if k != "properties"}
    item["type"] = "object"
    item["properties"] = {
        **(schema.get("properties") or {}),
        "apiVersion": OPT_STR,
        "kind": OPT_STR,
        "metadata": _ref(META + "ObjectMeta"),
    }
    item["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return {name: item, name + "List": _list(group, version, kind, name)}


def ref(name: str) -> Obj:
    return {"$ref": f"#/components/schemas/{name}"}


def _ref(name: str, default: Any = None) -> Obj:
    """A reference as the real documents write it (``allOf`` so a default can sit beside it)."""
    out: Obj = {"allOf": [ref(name)]}
    if default is not None:
        out["default"] = default
    return out


def _obj(properties: Obj, required: tuple[str, ...] = (), **extensions: Any) -> Obj:
    schema: Obj = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update({k.replace("_", "-"): v for k, v in extensions.items()})
    return schema


def _atomic(items: Obj) -> Obj:
    return {"type": "array", "items": items, "x-kubernetes-list-type": "atomic"}


def _keyed(items: Obj, key: str) -> Obj:
    return {
        "type": "array",
        "items": items,
        "x-kubernetes-list-map-keys": [key],
        "x-kubernetes-list-type": "map",
        "x-kubernetes-patch-merge-key": key,
        "x-kubernetes-patch-strategy": "merge",
    }


def _kind(
    group: str, version: str, kind: str, spec: str | None, status: str | None, **fields: Obj
) -> Obj:
    properties: Obj = {
        "apiVersion": OPT_STR,
        "kind": OPT_STR,
        "metadata": _ref(META + "ObjectMeta", {}),
        **fields,
    }
    if spec:
        properties["spec"] = _ref(spec, {})
    if status:
        properties["status"] = _ref(status, {})
    schema = _obj(properties)
    schema["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return schema


def _list(group: str, version: str, kind: str, item: str) -> Obj:
    schema = _obj(
        {
            "apiVersion": OPT_STR,
            "items": {"type": "array", "items": _ref(item, {})},
            "kind": OPT_STR,
            "metadata": _ref(META + "ListMeta", {}),
        },
        ("items",),
    )
    schema["x-kubernetes-group-version-kind"] = [
        {"group": group, "kind": f"{kind}List", "version": version}
    ]
    return schema


_SELECTOR_REQUIREMENT = _obj(
    {"key": STR, "operator": STR, "values": _atomic({"type": "string", "default": ""})},
    ("key", "operator"),
)

SCHEMAS: dict[str, Obj] = {
    # --- meta ---------------------------------------------------------------------------
    META + "Time": {"type": "string", "format": "date-time"},
    META + "MicroTime": {"type": "string", "format": "date-time"},
    META + "FieldsV1": {"type": "object"},
    INT_OR_STRING: {"type": "string", "format": "int-or-string"},
    META + "ObjectMeta": _obj(
        {
            "annotations": STR_MAP,
            "creationTimestamp": _ref(META + "Time"),
            "deletionGracePeriodSeconds": INT64,
            "deletionTimestamp": _ref(META + "Time"),
            "finalizers": {
                "type": "array",
                "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "set",
                "x-kubernetes-patch-strategy": "merge",
            },
            "generateName": OPT_STR,
            "generation": INT64,
            "labels": STR_MAP,
            "managedFields": _atomic(_ref(META + "ManagedFieldsEntry", {})),
            "name": OPT_STR,
            "namespace": OPT_STR,
            "ownerReferences": _keyed(_ref(META + "OwnerReference", {}), "uid"),
            "resourceVersion": OPT_STR,
            "selfLink": OPT_STR,
            "uid": OPT_STR,
        }
    ),
    META + "ListMeta": _obj(
        {
            "continue": OPT_STR,
            "remainingItemCount": INT64,
            "resourceVersion": OPT_STR,
            "selfLink": OPT_STR,
        }
    ),
    META + "ManagedFieldsEntry": _obj(
        {
            "apiVersion": OPT_STR,
            "fieldsType": OPT_STR,
            "fieldsV1": _ref(META + "FieldsV1"),
            "manager": OPT_STR,
            "operation": OPT_STR,
            "subresource": OPT_STR,
            "time": _ref(META + "Time"),
        }
    ),
    META + "OwnerReference": _obj(
        {
            "apiVersion": STR,
            "blockOwnerDeletion": BOOL,
            "controller": BOOL,
            "kind": STR,
            "name": STR,
            "uid": STR,
        },
        ("apiVersion", "kind", "name", "uid"),
        x_kubernetes_map_type="atomic",
    ),
    META + "LabelSelector": _obj(
        {
            "matchExpressions": _atomic(_ref(META + "LabelSelectorRequirement", {})),
            "matchLabels": STR_MAP,
        },
        x_kubernetes_map_type="atomic",
    ),
    META + "LabelSelectorRequirement": _SELECTOR_REQUIREMENT,
    META + "Status": _obj(
        {
            "apiVersion": OPT_STR,
            "code": INT32,
            "details": LOOSE,
            "kind": OPT_STR,
            "message": OPT_STR,
            "metadata": _ref(META + "ListMeta", {}),
            "reason": OPT_STR,
            "status": OPT_STR,
        },
        x_kubernetes_group_version_kind=[{"group": "", "kind": "Status", "version": "v1"}],
    ),
    META + "WatchEvent": _obj({"object": LOOSE, "type": STR}, ("type", "object")),
    # --- networking.k8s.io/v1 -----------------------------------------------------------
    NET + "NetworkPolicy": _kind(
        "networking.k8s.io", "v1", "NetworkPolicy", NET + "NetworkPolicySpec", None
    ),
    NET + "NetworkPolicyList": _list(
        "networking.k8s.io", "v1", "NetworkPolicy", NET + "NetworkPolicy"
    ),
    NET + "NetworkPolicySpec": _obj(
        {
            "egress": _atomic(_ref(NET + "NetworkPolicyEgressRule", {})),
            "ingress": _atomic(_ref(NET + "NetworkPolicyIngressRule", {})),
            "podSelector": _ref(META + "LabelSelector", {}),
            "policyTypes": _atomic(
                {"type": "string", "default": "", "enum": ["Egress", "Ingress"]}
            ),
        }
    ),
    NET + "NetworkPolicyIngressRule": _obj(
        {
            "from": _atomic(_ref(NET + "NetworkPolicyPeer", {})),
            "ports": _atomic(_ref(NET + "NetworkPolicyPort", {})),
        }
    ),
    NET + "NetworkPolicyEgressRule": _obj(
        {
            "ports": _atomic(_ref(NET + "NetworkPolicyPort", {})),
            "to": _atomic(_ref(NET + "NetworkPolicyPeer", {})),
        }
    ),
    NET + "NetworkPolicyPeer": _obj(
        {
            "ipBlock": _ref(NET + "IPBlock"),
            "namespaceSelector": _ref(META + "LabelSelector"),
            "podSelector": _ref(META + "LabelSelector"),
        }
    ),
    NET + "NetworkPolicyPort": _obj(
        {
            "endPort": INT32,
            "port": _ref(INT_OR_STRING),
            "protocol": {"type": "string", "enum": ["SCTP", "TCP", "UDP"]},
        }
    ),
    NET + "IPBlock": _obj(
        {"cidr": STR, "except": _atomic({"type": "string", "default": ""})}, ("cidr",)
    ),
    # --- core/v1 ------------------------------------------------------------------------
    CORE + "Namespace": _kind(
        "", "v1", "Namespace", CORE + "NamespaceSpec", CORE + "NamespaceStatus"
    ),
    CORE + "NamespaceList": _list("", "v1", "Namespace", CORE + "Namespace"),
    CORE + "NamespaceSpec": _obj({"finalizers": _atomic({"type": "string", "default": ""})}),
    CORE + "NamespaceStatus": _obj({"conditions": _atomic(LOOSE), "phase": OPT_STR}),
    CORE + "Pod": _kind("", "v1", "Pod", CORE + "PodSpec", CORE + "PodStatus"),
    CORE + "PodList": _list("", "v1", "Pod", CORE + "Pod"),
    CORE + "PodSpec": {
        **_obj(
            {
                "containers": _keyed(_ref(CORE + "Container", {}), "name"),
                "initContainers": _keyed(_ref(CORE + "Container", {}), "name"),
                "nodeName": OPT_STR,
                "nodeSelector": STR_MAP,
                "restartPolicy": OPT_STR,
                "serviceAccountName": OPT_STR,
                "terminationGracePeriodSeconds": INT64,
                "volumes": _keyed(LOOSE, "name"),
            },
            ("containers",),
        ),
        "x-kubernetes-preserve-unknown-fields": True,
    },
    CORE + "Container": {
        **_obj(
            {
                "args": _atomic({"type": "string", "default": ""}),
                "command": _atomic({"type": "string", "default": ""}),
                "env": _keyed(LOOSE, "name"),
                "image": OPT_STR,
                "imagePullPolicy": OPT_STR,
                "name": STR,
                "ports": _keyed(_ref(CORE + "ContainerPort", {}), "containerPort"),
            },
            ("name",),
        ),
        "x-kubernetes-preserve-unknown-fields": True,
    },
    CORE + "ContainerPort": _obj(
        {"containerPort": {**INT32, "default": 0}, "name": OPT_STR, "protocol": OPT_STR},
        ("containerPort",),
    ),
    CORE + "PodStatus": {**_obj({"phase": OPT_STR, "podIP": OPT_STR}), **LOOSE},
    CORE + "ConfigMap": _kind(
        "",
        "v1",
        "ConfigMap",
        None,
        None,
        binaryData={"type": "object", "additionalProperties": {"type": "string"}},
        data=STR_MAP,
        immutable=BOOL,
    ),
    CORE + "ConfigMapList": _list("", "v1", "ConfigMap", CORE + "ConfigMap"),
    # --- apiextensions.k8s.io/v1 --------------------------------------------------------
    APIEXT + "CustomResourceDefinition": _kind(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        APIEXT + "CustomResourceDefinitionSpec",
        APIEXT + "CustomResourceDefinitionStatus",
    ),
    APIEXT + "CustomResourceDefinitionList": _list(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        APIEXT + "CustomResourceDefinition",
    ),
    APIEXT + "CustomResourceDefinitionSpec": {
        **_obj(
            {
                "group": STR,
                "names": LOOSE,
                "scope": STR,
                "versions": _atomic(LOOSE),
                "conversion": LOOSE,
                "preserveUnknownFields": BOOL,
            },
            ("group", "names", "scope", "versions"),
        ),
        "x-kubernetes-preserve-unknown-fields": True,
    },
    APIEXT + "CustomResourceDefinitionStatus": {
        **_obj(
            {
                "acceptedNames": LOOSE,
                "conditions": _keyed(LOOSE, "type"),
                "storedVersions": _atomic({"type": "string", "default": ""}),
            }
        ),
        "x-kubernetes-preserve-unknown-fields": True,
    },
    # --- admissionregistration.k8s.io/v1 ------------------------------------------------
    ADMREG + "ValidatingWebhookConfiguration": _kind(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        None,
        None,
        webhooks=_keyed(_ref(ADMREG + "ValidatingWebhook", {}), "name"),
    ),
    ADMREG + "ValidatingWebhookConfigurationList": _list(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        ADMREG + "ValidatingWebhookConfiguration",
    ),
    ADMREG + "ValidatingWebhook": _obj(
        {
            "admissionReviewVersions": _atomic({"type": "string", "default": ""}),
            "clientConfig": _ref(ADMREG + "WebhookClientConfig", {}),
            "failurePolicy": OPT_STR,
            "matchConditions": _keyed(LOOSE, "name"),
            "matchPolicy": OPT_STR,
            "name": STR,
            "namespaceSelector": _ref(META + "LabelSelector"),
            "objectSelector": _ref(META + "LabelSelector"),
            "rules": _atomic(_ref(ADMREG + "RuleWithOperations", {})),
            "sideEffects": STR,
            "timeoutSeconds": INT32,
        },
        ("name", "clientConfig", "sideEffects", "admissionReviewVersions"),
    ),
    ADMREG + "WebhookClientConfig": _obj(
        {
            "caBundle": {"type": "string", "format": "byte"},
            "service": _ref(ADMREG + "ServiceReference"),
            "url": OPT_STR,
        }
    ),
    ADMREG + "ServiceReference": _obj(
        {"name": STR, "namespace": STR, "path": OPT_STR, "port": INT32},
        ("namespace", "name"),
    ),
    ADMREG + "RuleWithOperations": _obj(
        {
            "apiGroups": _atomic({"type": "string", "default": ""}),
            "apiVersions": _atomic({"type": "string", "default": ""}),
            "operations": _atomic({"type": "string", "default": ""}),
            "resources": _atomic({"type": "string", "default": ""}),
            "scope": OPT_STR,
        }
    ),
    # --- coordination.k8s.io/v1 ---------------------------------------------------------
    COORD + "Lease": _kind("coordination.k8s.io", "v1", "Lease", COORD + "LeaseSpec", None),
    COORD + "LeaseList": _list("coordination.k8s.io", "v1", "Lease", COORD + "Lease"),
    COORD + "LeaseSpec": _obj(
        {
            "acquireTime": _ref(META + "MicroTime"),
            "holderIdentity": OPT_STR,
            "leaseDurationSeconds": INT32,
            "leaseTransitions": INT32,
            "preferredHolder": OPT_STR,
            "renewTime": _ref(META + "MicroTime"),
            "strategy": OPT_STR,
        }
    ),
}
