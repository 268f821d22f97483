"""The kinds the sandbox serves, described once: discovery, OpenAPI, routing and the store
all read this registry, so adding a kind is one :class:`ResourceType` entry.

The registry changes at run time when a CustomResourceDefinition is created, changed or
deleted (:mod:`driftwatch.sandbox.crds`): its ``generation`` grows on every change, so the
OpenAPI documents know to rebuild, and custom kinds carry their CRD's schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALL_VERBS",
    "CONFIG_MAPS",
    "CORE_TYPES",
    "CUSTOM_RESOURCE_DEFINITIONS",
    "LEASES",
    "NAMESPACES",
    "NETWORK_POLICIES",
    "PODS",
    "VALIDATING_WEBHOOK_CONFIGURATIONS",
    "PrinterColumn",
    "Registry",
    "ResourceType",
    "TypeKey",
    "default_registry",
]

TypeKey = tuple[str, str, str]
"""(group, version, plural): what identifies a resource type across registry changes."""

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """A CRD's ``additionalPrinterColumns`` entry: a ``kubectl get`` column."""

    name: str
    type: str
    json_path: str
    priority: int = 0
    format: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One REST resource: ``networking.k8s.io/v1`` ``networkpolicies`` of kind NetworkPolicy.

    ``schema`` is the OpenAPI definition name (``io.k8s.api.networking.v1.NetworkPolicy``);
    ``has_generation``: ``metadata.generation`` starts at 1 and grows when ``spec`` changes;
    ``has_status``: a ``status`` subresource exists, so writes to the main resource keep the
    stored status (and ``.../status`` writes change only status); ``field_labels``: field
    selector keys beyond ``metadata.name`` and ``metadata.namespace``.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    schema: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_generation: bool = False
    has_status: bool = False
    field_labels: tuple[str, ...] = ()
    custom: bool = False
    printer_columns: tuple[PrinterColumn, ...] = ()
    singular_name: str = ""

    @property
    def key(self) -> TypeKey:
        return (self.group, self.version, self.plural)

    @property
    def singular(self) -> str:
        return self.singular_name or self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> tuple[str, str]:
        return (self.group, self.version)

    @property
    def group_resource(self) -> str:
        """``networkpolicies.networking.k8s.io`` (``pods`` for the core group), as in errors."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def base_path(self, namespace: str | None = None) -> str:
        """The collection URL: ``/apis/g/v[/namespaces/ns]/plural``."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and self.namespaced:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


NETWORK_POLICIES = ResourceType(
    group="networking.k8s.io",
    version="v1",
    plural="networkpolicies",
    kind="NetworkPolicy",
    namespaced=True,
    schema="io.k8s.api.networking.v1.NetworkPolicy",
    short_names=("netpol",),
    has_generation=True,
)
NAMESPACES = ResourceType(
    group="",
    version="v1",
    plural="namespaces",
    kind="Namespace",
    namespaced=False,
    schema="io.k8s.api.core.v1.Namespace",
    short_names=("ns",),
    has_status=True,
    field_labels=("status.phase",),
)
PODS = ResourceType(
    group="",
    version="v1",
    plural="pods",
    kind="Pod",
    namespaced=True,
    schema="io.k8s.api.core.v1.Pod",
    short_names=("po",),
    categories=("all",),
    has_status=True,
    field_labels=("spec.nodeName", "spec.restartPolicy", "status.phase", "status.podIP"),
)
LEASES = ResourceType(
    group="coordination.k8s.io",
    version="v1",
    plural="leases",
    kind="Lease",
    namespaced=True,
    schema="io.k8s.api.coordination.v1.Lease",
)
CONFIG_MAPS = ResourceType(
    group="",
    version="v1",
    plural="configmaps",
    kind="ConfigMap",
    namespaced=True,
    schema="io.k8s.api.core.v1.ConfigMap",
    short_names=("cm",),
)
CUSTOM_RESOURCE_DEFINITIONS = ResourceType(
    group="apiextensions.k8s.io",
    version="v1",
    plural="customresourcedefinitions",
    kind="CustomResourceDefinition",
    namespaced=False,
    schema="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    has_generation=True,
    has_status=True,
)
VALIDATING_WEBHOOK_CONFIGURATIONS = ResourceType(
    group="admissionregistration.k8s.io",
    version="v1",
    plural="validatingwebhookconfigurations",
    kind="ValidatingWebhookConfiguration",
    namespaced=False,
    schema="io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
    categories=("api-extensions",),
    has_generation=True,
)
CORE_TYPES = (
    NETWORK_POLICIES,
    NAMESPACES,
    PODS,
    LEASES,
    CONFIG_MAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    VALIDATING_WEBHOOK_CONFIGURATIONS,
)


class Registry:
    """Lookup of resource types by group/version/plural and by kind."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._types: dict[TypeKey, ResourceType] = {}
        self.schemas: dict[TypeKey, dict[str, Any]] = {}
        """The ``openAPIV3Schema`` of each custom kind."""
        self.generation = 0
        """Grows on every change (the OpenAPI documents rebuild when it moved)."""
        for rtype in types:
            self.add(rtype)

    def add(self, rtype: ResourceType, schema: dict[str, Any] | None = None) -> None:
        """Serve ``rtype`` (replacing the type of the same group/version/plural)."""
        self._types[rtype.key] = rtype
        if schema is not None:
            self.schemas[rtype.key] = schema
        else:
            self.schemas.pop(rtype.key, None)
        self.generation += 1

    def remove(self, key: TypeKey) -> ResourceType | None:
        """Stop serving a type; returns it (None if it was not served)."""
        self.schemas.pop(key, None)
        rtype = self._types.pop(key, None)
        if rtype is not None:
            self.generation += 1
        return rtype

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._types.values())

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rtype in self._types.values():
            if rtype.group == group and rtype.version == version and rtype.kind == kind:
                return rtype
        return None

    def group_versions(self) -> list[tuple[str, str]]:
        """Every (group, version) served, core first, in registration order."""
        seen: dict[tuple[str, str], None] = {}
        for rtype in sorted(self._types.values(), key=lambda t: t.group != ""):
            seen.setdefault(rtype.group_version, None)
        return list(seen)

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group_version == (group, version)]


def default_registry() -> Registry:
    """NetworkPolicies, Namespaces, Pods, Leases, ConfigMaps, CustomResourceDefinitions and
    ValidatingWebhookConfigurations."""
    return Registry(CORE_TYPES)
