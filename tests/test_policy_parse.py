"""Unit tests for parse_policy: every normalisation rule, every validation rule.

Normalisation tests put a policy as the API server returns it (``kubectl get -o yaml`` after
``kubectl apply`` and a later ``kubectl edit``) beside the same policy as written in Git, and
expect them to compare equal; each also has a counterpart that must *not* compare equal, so
that no test passes by ``==`` being too lenient.

Validation tests expect a PolicyError with the API server's field path and a message that
names the object.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from driftwatch.policy import (
    EGRESS,
    INGRESS,
    LAST_APPLIED,
    IPBlock,
    LabelSelector,
    LiveOrigin,
    NetworkPolicy,
    Peer,
    PolicyError,
    PolicyPort,
    PolicyRule,
    PolicySpec,
    Requirement,
    live_origin,
    parse_policy,
    to_manifest,
    to_yaml,
)

NAME = "web"
NAMESPACE = "shop"
WHO = "NetworkPolicy shop/web"
APPLIED_AT = "2026-11-20T09:14:02Z"
EDITED_AT = "2026-11-27T12:03:22Z"
RESOURCE_VERSION = "4821337"
ABSENT: Any = object()  # "leave the field out"

# ---------------------------------------------------------------------------------------------
# One realistic pair: the file in Git, and what `kubectl get networkpolicy web -o yaml` shows.

GIT_YAML = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: shop
  labels:
    team: payments
    app.kubernetes.io/name: web
  annotations:
    owner: payments@example.com
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
    - from:
        - podSelector:
            matchLabels:
              role: frontend
        - namespaceSelector:
            matchExpressions:
              - key: env
                operator: In
                values: [prod, staging]
          podSelector: {}
        - ipBlock:
            cidr: 10.0.0.0/8
            except:
              - 10.1.0.0/16
      ports:
        - port: 8080
        - port: http
  egress:
    - to:
        - ipBlock:
            cidr: 2001:db8::/32
      ports:
        - protocol: UDP
          port: 53
        - port: 30000
          endPort: 32767
"""

LIVE_YAML = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"annotations":{"owner":"payments@example.com"},"labels":{"app.kubernetes.io/name":"web","team":"payments"},"name":"web","namespace":"shop"},"spec":{"egress":[{"ports":[{"port":53,"protocol":"UDP"},{"endPort":32767,"port":30000}],"to":[{"ipBlock":{"cidr":"2001:db8::/32"}}]}],"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"frontend"}}},{"namespaceSelector":{"matchExpressions":[{"key":"env","operator":"In","values":["prod","staging"]}]},"podSelector":{}},{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}],"ports":[{"port":8080},{"port":"http"}]}],"podSelector":{"matchLabels":{"app":"web"}}}}
    owner: payments@example.com
  creationTimestamp: "2026-11-20T09:14:02Z"
  generation: 2
  labels:
    app.kubernetes.io/name: web
    team: payments
  managedFields:
  - apiVersion: networking.k8s.io/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:annotations:
          .: {}
          f:kubectl.kubernetes.io/last-applied-configuration: {}
          f:owner: {}
        f:labels:
          .: {}
          f:app.kubernetes.io/name: {}
          f:team: {}
      f:spec:
        f:egress: {}
        f:podSelector: {}
        f:policyTypes: {}
    manager: kubectl-client-side-apply
    operation: Update
    time: "2026-11-20T09:14:02Z"
  - apiVersion: networking.k8s.io/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:spec:
        f:ingress: {}
    manager: kubectl-edit
    operation: Update
    time: "2026-11-27T12:03:22Z"
  name: web
  namespace: shop
  resourceVersion: "4821337"
  selfLink: /apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/web
  uid: 0b6a0e4c-6d3e-4c8e-9a43-2f1d8f0c7e55
spec:
  egress:
  - ports:
    - port: 53
      protocol: UDP
    - endPort: 32767
      port: 30000
      protocol: TCP
    to:
    - ipBlock:
        cidr: 2001:db8::/32
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: frontend
    - namespaceSelector:
        matchExpressions:
        - key: env
          operator: In
          values:
          - prod
          - staging
      podSelector: {}
    - ipBlock:
        cidr: 10.0.0.0/8
        except:
        - 10.1.0.0/16
    ports:
    - port: 8080
      protocol: TCP
    - port: http
      protocol: TCP
  podSelector:
    matchLabels:
      app: web
  policyTypes:
  - Ingress
  - Egress
status: {}
"""


def git_doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(GIT_YAML)
    return loaded


def live_doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(LIVE_YAML)
    return loaded


# ---------------------------------------------------------------------------------------------
# Builders for the rule-by-rule tests: the same server metadata around any spec.


def git(
    spec: dict[str, Any] | None = None,
    *,
    name: str = NAME,
    namespace: str | None = NAMESPACE,
    labels: dict[str, Any] | None = None,
    annotations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A policy as written in Git: nothing but what the author typed."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    obj: dict[str, Any] = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}
    obj["metadata"] = meta
    if spec is not None:
        obj["spec"] = spec
    return obj


def managed_fields() -> list[dict[str, Any]]:
    """Client-side apply, then a later ``kubectl edit``: what the server records."""
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:annotations": {".": {}, f"f:{LAST_APPLIED}": {}}},
                "f:spec": {"f:podSelector": {}, "f:policyTypes": {}},
            },
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "time": APPLIED_AT,
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:ingress": {}}},
            "manager": "kubectl-edit",
            "operation": "Update",
            "time": EDITED_AT,
        },
    ]


def live(
    spec: dict[str, Any],
    *,
    name: str = NAME,
    namespace: str = NAMESPACE,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    applied: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A policy as the API server returns it; ``spec`` is written out as the server has it.

    ``applied`` is the object ``kubectl apply`` sent (for the last-applied annotation).
    """
    applied = applied if applied is not None else git({}, name=name, namespace=namespace)
    last_applied = json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"
    meta: dict[str, Any] = {
        "annotations": {**(annotations or {}), LAST_APPLIED: last_applied},
        "creationTimestamp": APPLIED_AT,
        "generation": 2,
    }
    if labels is not None:
        meta["labels"] = labels
    meta["managedFields"] = managed_fields()
    meta["name"] = name
    meta["namespace"] = namespace
    meta["resourceVersion"] = RESOURCE_VERSION
    meta["selfLink"] = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"
    meta["uid"] = "0b6a0e4c-6d3e-4c8e-9a43-2f1d8f0c7e55"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": spec,
        "status": {},
    }


def served_spec(**fields: Any) -> dict[str, Any]:
    """A spec as the server returns it: ``podSelector: {}`` and ``policyTypes`` filled in."""
    return {"podSelector": {}, "policyTypes": ["Ingress"], **fields}


def assert_same(desired: dict[str, Any], served: dict[str, Any], **kwargs: Any) -> NetworkPolicy:
    """The Git and the live object normalise to the same policy; returns it."""
    from_git = parse_policy(desired, **kwargs)
    from_live = parse_policy(served, **kwargs)
    assert from_git == from_live
    assert to_yaml(from_git) == to_yaml(from_live)
    return from_git


def assert_different(desired: dict[str, Any], served: dict[str, Any], **kwargs: Any) -> None:
    from_git = parse_policy(desired, **kwargs)
    from_live = parse_policy(served, **kwargs)
    assert from_git != from_live
    assert to_yaml(from_git) != to_yaml(from_live)


# ---------------------------------------------------------------------------------------------
# The realistic pair


def test_live_object_equals_the_git_object() -> None:
    from_git = parse_policy(git_doc())
    from_live = parse_policy(live_doc())
    assert from_live == from_git
    assert to_yaml(from_live) == to_yaml(from_git)


def test_the_pair_normalises_to_this_policy() -> None:
    web_peer = Peer(pod_selector=LabelSelector(match_labels=(("role", "frontend"),)))
    env = Requirement("env", "In", ("prod", "staging"))
    expected = NetworkPolicy(
        namespace="shop",
        name="web",
        labels=(("app.kubernetes.io/name", "web"), ("team", "payments")),
        annotations=(("owner", "payments@example.com"),),
        spec=PolicySpec(
            pod_selector=LabelSelector(match_labels=(("app", "web"),)),
            policy_types=(INGRESS, EGRESS),
            ingress=(
                PolicyRule(
                    peers=(
                        web_peer,
                        Peer(
                            pod_selector=LabelSelector(),
                            namespace_selector=LabelSelector(match_expressions=(env,)),
                        ),
                        Peer(ip_block=IPBlock("10.0.0.0/8", ("10.1.0.0/16",))),
                    ),
                    ports=(PolicyPort("TCP", 8080), PolicyPort("TCP", "http")),
                ),
            ),
            egress=(
                PolicyRule(
                    peers=(Peer(ip_block=IPBlock("2001:db8::/32")),),
                    ports=(PolicyPort("UDP", 53), PolicyPort("TCP", 30000, 32767)),
                ),
            ),
        ),
    )
    assert parse_policy(git_doc()) == expected
    assert parse_policy(live_doc()) == expected


def test_the_pair_renders_as_this_canonical_manifest() -> None:
    expected = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/name": "web", "team": "payments"},
            "annotations": {"owner": "payments@example.com"},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"role": "frontend"}}},
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": "env", "operator": "In", "values": ["prod", "staging"]}
                                ]
                            },
                            "podSelector": {},
                        },
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    ],
                    "ports": [
                        {"protocol": "TCP", "port": 8080},
                        {"protocol": "TCP", "port": "http"},
                    ],
                }
            ],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "2001:db8::/32"}}],
                    "ports": [
                        {"protocol": "UDP", "port": 53},
                        {"protocol": "TCP", "port": 30000, "endPort": 32767},
                    ],
                }
            ],
            "policyTypes": ["Ingress", "Egress"],
        },
    }
    assert to_manifest(parse_policy(live_doc())) == expected
    assert yaml.safe_load(to_yaml(parse_policy(git_doc()))) == expected


def test_to_yaml_has_a_fixed_field_order() -> None:
    policy = parse_policy(
        live(
            served_spec(ingress=[{"ports": [{"port": 80, "protocol": "TCP"}]}]),
            labels={"b": "2", "a": "true"},
        )
    )
    assert to_yaml(policy) == (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata:\n"
        "  name: web\n"
        "  namespace: shop\n"
        "  labels:\n"
        "    a: 'true'\n"
        "    b: '2'\n"
        "spec:\n"
        "  podSelector: {}\n"
        "  ingress:\n"
        "  - ports:\n"
        "    - protocol: TCP\n"
        "      port: 80\n"
        "  policyTypes:\n"
        "  - Ingress\n"
    )


@pytest.mark.parametrize(
    "value",
    [
        "next\x85line",  # NEL: PyYAML's pure-Python emitter used to turn it into a space
        "\x85",
        "a\u2028b",
        "line1\nline2\n",
        " leading",
        "trailing ",
        "yes",
        "null",
        "0x1f",
        "café",
        '{"json": [1, 2]}',
        "#comment",
        "- item",
        "a: b",
        "",
    ],
    ids=repr,
)
def test_to_yaml_keeps_every_annotation_value(value: str) -> None:
    policy = parse_policy(git({}, annotations={"note": value}))
    loaded = yaml.safe_load(to_yaml(policy))
    assert loaded["metadata"]["annotations"]["note"] == value
    assert parse_policy(loaded) == policy


def test_the_live_object_is_not_modified_by_parsing() -> None:
    doc = live_doc()
    before = copy.deepcopy(doc)
    parse_policy(doc)
    assert doc == before


def test_a_spec_change_on_the_live_side_is_seen() -> None:
    doc = live_doc()
    doc["spec"]["ingress"][0]["ports"][0]["port"] = 8081
    assert parse_policy(doc) != parse_policy(git_doc())


# ---------------------------------------------------------------------------------------------
# Server-populated metadata is ignored, field by field

SERVER_FIELDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "uid": lambda o: o["metadata"].update(uid="0b6a0e4c-6d3e-4c8e-9a43-2f1d8f0c7e55"),
    "resourceVersion": lambda o: o["metadata"].update(resourceVersion=RESOURCE_VERSION),
    "generation": lambda o: o["metadata"].update(generation=7),
    "creationTimestamp": lambda o: o["metadata"].update(creationTimestamp=APPLIED_AT),
    "managedFields": lambda o: o["metadata"].update(managedFields=managed_fields()),
    "selfLink": lambda o: o["metadata"].update(
        selfLink="/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/web"
    ),
    "last-applied-configuration": lambda o: (
        o["metadata"]
        .setdefault("annotations", {})
        .update({LAST_APPLIED: json.dumps(git_doc()) + "\n"})
    ),
    "status": lambda o: o.update(status={}),
}


@pytest.mark.parametrize("field", SERVER_FIELDS)
def test_each_server_populated_field_is_ignored(field: str) -> None:
    plain = git_doc()
    served = git_doc()
    SERVER_FIELDS[field](served)
    assert served != plain
    assert parse_policy(served) == parse_policy(plain)
    assert to_manifest(parse_policy(served)) == to_manifest(parse_policy(plain))


@pytest.mark.parametrize("field", SERVER_FIELDS)
def test_each_server_populated_field_is_absent_from_the_canonical_form(field: str) -> None:
    manifest = to_manifest(parse_policy(live_doc()))
    text = to_yaml(parse_policy(live_doc()))
    assert field not in manifest
    assert field not in manifest["metadata"]
    assert field not in manifest["metadata"].get("annotations", {})
    assert field not in text


def test_a_recreated_object_with_new_server_fields_is_equal() -> None:
    first = live_doc()
    second = live_doc()
    second["metadata"].update(
        uid="5d1f3c7a-0000-4000-8000-000000000001",
        resourceVersion="99",
        generation=1,
        creationTimestamp="2026-12-01T00:00:00Z",
        managedFields=[
            {"manager": "argocd-controller", "operation": "Apply", "time": "2026-12-01T00:00:00Z"}
        ],
    )
    assert parse_policy(second) == parse_policy(first)
    assert parse_policy(second).origin != parse_policy(first).origin


# ---------------------------------------------------------------------------------------------
# policyTypes defaulting


@pytest.mark.parametrize("types", [ABSENT, [], None], ids=["absent", "empty", "null"])
def test_policy_types_default_to_ingress(types: Any) -> None:
    spec: dict[str, Any] = {"podSelector": {}}
    if types is not ABSENT:
        spec["policyTypes"] = types
    policy = assert_same(git(spec), live(served_spec()))
    assert policy.spec.policy_types == (INGRESS,)
    assert to_manifest(policy)["spec"]["policyTypes"] == ["Ingress"]
    assert_different(git(spec), live(served_spec(policyTypes=["Ingress", "Egress"])))


def test_egress_rules_add_the_egress_type_when_no_types_are_written() -> None:
    egress = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]
    policy = assert_same(
        git({"egress": egress}),
        live(served_spec(egress=egress, policyTypes=["Ingress", "Egress"])),
    )
    assert policy.spec.policy_types == (INGRESS, EGRESS)
    # Without the Egress type the same egress rules would be inert: a real difference.
    assert_different(git({"egress": egress}), live(served_spec(egress=egress)))


@pytest.mark.parametrize("egress", [ABSENT, [], None], ids=["absent", "empty", "null"])
def test_no_egress_rules_add_no_egress_type(egress: Any) -> None:
    spec: dict[str, Any] = {"ingress": [{}]}
    if egress is not ABSENT:
        spec["egress"] = egress
    policy = assert_same(git(spec), live(served_spec(ingress=[{}])))
    assert policy.spec.policy_types == (INGRESS,)
    assert policy.spec.egress == ()


def test_explicit_egress_only_type_is_kept() -> None:
    spec = {"policyTypes": ["Egress"]}
    policy = assert_same(git(spec), live(served_spec(policyTypes=["Egress"])))
    assert policy.spec.policy_types == (EGRESS,)
    assert_different(git(spec), live(served_spec(policyTypes=["Ingress", "Egress"])))


def test_explicit_ingress_type_is_kept_even_with_egress_rules() -> None:
    egress = [{"to": [{"podSelector": {}}]}]
    spec = {"egress": egress, "policyTypes": ["Ingress"]}
    policy = assert_same(git(spec), live(served_spec(egress=egress, policyTypes=["Ingress"])))
    assert policy.spec.policy_types == (INGRESS,)


def test_policy_types_order_is_canonical() -> None:
    egress_first = {"policyTypes": ["Egress", "Ingress"]}
    policy = assert_same(git(egress_first), live(served_spec(policyTypes=["Ingress", "Egress"])))
    assert_same(git(egress_first), live(served_spec(policyTypes=["Egress", "Ingress"])))
    assert policy.spec.policy_types == (INGRESS, EGRESS)
    assert to_manifest(policy)["spec"]["policyTypes"] == ["Ingress", "Egress"]


# ---------------------------------------------------------------------------------------------
# protocol defaulting


@pytest.mark.parametrize(
    "port",
    [{"port": 8080}, {"port": 8080, "protocol": None}],
    ids=["absent", "null"],
)
def test_protocol_defaults_to_tcp(port: dict[str, Any]) -> None:
    policy = assert_same(
        git({"ingress": [{"ports": [port]}]}),
        live(served_spec(ingress=[{"ports": [{"port": 8080, "protocol": "TCP"}]}])),
    )
    assert policy.spec.ingress[0].ports == (PolicyPort("TCP", 8080),)
    assert to_manifest(policy)["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_protocol_defaults_to_tcp_on_a_portless_entry() -> None:
    policy = assert_same(
        git({"egress": [{"ports": [{}]}]}),
        live(
            served_spec(
                egress=[{"ports": [{"protocol": "TCP"}]}], policyTypes=["Ingress", "Egress"]
            )
        ),
    )
    assert policy.spec.egress[0].ports == (PolicyPort("TCP", None),)


@pytest.mark.parametrize("protocol", ["UDP", "SCTP"])
def test_a_non_default_protocol_is_kept_and_differs_from_tcp(protocol: str) -> None:
    written = git({"ingress": [{"ports": [{"port": 53, "protocol": protocol}]}]})
    policy = assert_same(
        written, live(served_spec(ingress=[{"ports": [{"port": 53, "protocol": protocol}]}]))
    )
    assert policy.spec.ingress[0].ports == (PolicyPort(protocol, 53),)
    assert_different(
        written, live(served_spec(ingress=[{"ports": [{"port": 53, "protocol": "TCP"}]}]))
    )


# ---------------------------------------------------------------------------------------------
# metadata.namespace defaulting


@pytest.mark.parametrize("namespace", [None, ""], ids=["absent", "empty"])
def test_missing_namespace_becomes_default(namespace: str | None) -> None:
    written = git({}, namespace=namespace)
    policy = assert_same(written, live(served_spec(), namespace="default"))
    assert policy.namespace == "default"
    assert to_manifest(policy)["metadata"]["namespace"] == "default"
    assert_different(written, live(served_spec(), namespace="shop"))


def test_null_namespace_becomes_default() -> None:
    written = git({})
    written["metadata"]["namespace"] = None  # `namespace:` with nothing after it
    assert parse_policy(written).namespace == "default"


def test_missing_namespace_becomes_the_configured_default() -> None:
    written = git({}, namespace=None)
    policy = assert_same(
        written, live(served_spec(), namespace="team-a"), default_namespace="team-a"
    )
    assert policy.namespace == "team-a"
    assert policy.key().namespace == "team-a"
    assert parse_policy(written, default_namespace="team-a") != parse_policy(
        live(served_spec(), namespace="default")
    )


def test_written_namespace_wins_over_the_configured_default() -> None:
    policy = parse_policy(git({}, namespace="shop"), default_namespace="team-a")
    assert policy.namespace == "shop"


# ---------------------------------------------------------------------------------------------
# podSelector: {} and its other spellings


@pytest.mark.parametrize(
    "selector",
    [
        ABSENT,
        None,
        {},
        {"matchLabels": None},
        {"matchLabels": {}},
        {"matchExpressions": None},
        {"matchExpressions": []},
        {"matchLabels": None, "matchExpressions": None},
    ],
    ids=[
        "absent",
        "null",
        "empty",
        "matchLabels-null",
        "matchLabels-empty",
        "matchExpressions-null",
        "matchExpressions-empty",
        "both-null",
    ],
)
def test_spellings_of_select_all_pods_are_equal(selector: Any) -> None:
    spec: dict[str, Any] = {}
    if selector is not ABSENT:
        spec["podSelector"] = selector
    policy = assert_same(git(spec), live(served_spec()))
    assert policy.spec.pod_selector == LabelSelector()
    assert policy.spec.pod_selector.is_empty
    assert to_manifest(policy)["spec"]["podSelector"] == {}
    assert_different(git(spec), live(served_spec(podSelector={"matchLabels": {"app": "web"}})))


@pytest.mark.parametrize("selector", [{}, {"matchLabels": None}, {"matchExpressions": []}], ids=str)
def test_spellings_of_an_empty_peer_selector_are_equal(selector: dict[str, Any]) -> None:
    written = git({"ingress": [{"from": [{"podSelector": selector}]}]})
    policy = assert_same(written, live(served_spec(ingress=[{"from": [{"podSelector": {}}]}])))
    assert policy.spec.ingress[0].peers == (Peer(pod_selector=LabelSelector()),)
    # All pods of this namespace is not all pods of all namespaces.
    assert_different(written, live(served_spec(ingress=[{"from": [{"namespaceSelector": {}}]}])))


def test_match_labels_order_does_not_matter() -> None:
    assert_same(
        git({"podSelector": {"matchLabels": {"tier": "web", "app": "shop"}}}),
        live(served_spec(podSelector={"matchLabels": {"app": "shop", "tier": "web"}})),
    )


# ---------------------------------------------------------------------------------------------
# Absent, empty and null lists


def _rule_with(field: str, value: Any, **rest: Any) -> dict[str, Any]:
    rule = dict(rest)
    if value is not ABSENT:
        rule[field] = value
    return rule


FRONTEND = {"podSelector": {"matchLabels": {"role": "frontend"}}}

# For each list: the Git spec with that list set to a value (or left out), and the live spec.
LIST_CASES: dict[str, tuple[Callable[[Any], dict[str, Any]], dict[str, Any]]] = {
    "ingress": (
        lambda v: _rule_with("ingress", v),
        served_spec(),
    ),
    "egress": (
        lambda v: _rule_with("egress", v),
        served_spec(),
    ),
    "from": (
        lambda v: {"ingress": [_rule_with("from", v, ports=[{"port": 80}])]},
        served_spec(ingress=[{"ports": [{"port": 80, "protocol": "TCP"}]}]),
    ),
    "to": (
        lambda v: {"egress": [_rule_with("to", v, ports=[{"port": 53, "protocol": "UDP"}])]},
        served_spec(
            egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}],
            policyTypes=["Ingress", "Egress"],
        ),
    ),
    "ports": (
        lambda v: {"ingress": [_rule_with("ports", v, **{"from": [FRONTEND]})]},
        served_spec(ingress=[{"from": [FRONTEND]}]),
    ),
    "except": (
        lambda v: {
            "ingress": [{"from": [{"ipBlock": _rule_with("except", v, cidr="10.0.0.0/8")}]}]
        },
        served_spec(ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]),
    ),
    "matchExpressions": (
        lambda v: {"podSelector": _rule_with("matchExpressions", v, matchLabels={"app": "web"})},
        served_spec(podSelector={"matchLabels": {"app": "web"}}),
    ),
    "values": (
        lambda v: {
            "podSelector": {
                "matchExpressions": [_rule_with("values", v, key="canary", operator="Exists")]
            }
        },
        served_spec(podSelector={"matchExpressions": [{"key": "canary", "operator": "Exists"}]}),
    ),
}


@pytest.mark.parametrize("spelling", [ABSENT, [], None], ids=["absent", "empty", "null"])
@pytest.mark.parametrize("field", LIST_CASES)
def test_absent_empty_and_null_lists_are_equal(field: str, spelling: Any) -> None:
    build, served = LIST_CASES[field]
    assert_same(git(build(spelling)), live(served))
    assert parse_policy(git(build(spelling))) == parse_policy(git(build(ABSENT)))


# Non-empty counterparts: a list with an entry is a different policy.
NON_EMPTY = {
    "ingress": [{}],
    "egress": [{}],
    "from": [FRONTEND],
    "to": [FRONTEND],
    "ports": [{"port": 443}],
    "except": ["10.1.0.0/16"],
    "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}],
}


@pytest.mark.parametrize("field", NON_EMPTY)
def test_a_non_empty_list_differs_from_an_empty_one(field: str) -> None:
    build, served = LIST_CASES[field]
    assert_different(git(build(NON_EMPTY[field])), live(served))


def test_no_ingress_rules_denies_all_but_one_empty_rule_allows_all() -> None:
    deny_all = parse_policy(git({"ingress": []}))
    allow_all = parse_policy(git({"ingress": [{}]}))
    assert deny_all.spec.ingress == ()
    assert allow_all.spec.ingress == (PolicyRule(),)
    assert deny_all != allow_all
    assert allow_all == parse_policy(git({"ingress": [{"from": None, "ports": []}]}))


# ---------------------------------------------------------------------------------------------
# Labels and annotations


def test_labels_are_compared_whatever_their_order() -> None:
    policy = assert_same(
        git({}, labels={"team": "payments", "app": "web"}),
        live(served_spec(), labels={"app": "web", "team": "payments"}),
    )
    assert policy.labels == (("app", "web"), ("team", "payments"))
    assert policy.label_map == {"app": "web", "team": "payments"}


@pytest.mark.parametrize(
    "live_labels",
    [
        {"app": "web", "team": "checkout"},
        {"app": "web", "team": "payments", "extra": "x"},
        {"app": "web"},
        None,
    ],
    ids=["changed", "added", "removed", "none"],
)
def test_a_label_change_is_a_difference(live_labels: dict[str, str] | None) -> None:
    assert_different(
        git({}, labels={"app": "web", "team": "payments"}),
        live(served_spec(), labels=live_labels),
    )


def test_annotations_are_compared_but_last_applied_is_ignored() -> None:
    written = git({}, annotations={"owner": "payments@example.com"})
    policy = assert_same(
        written, live(served_spec(), annotations={"owner": "payments@example.com"})
    )
    assert policy.annotations == (("owner", "payments@example.com"),)
    assert LAST_APPLIED not in to_yaml(policy)
    assert_different(written, live(served_spec(), annotations={"owner": "someone@example.com"}))
    assert_different(
        written, live(served_spec(), annotations={"owner": "payments@example.com", "note": "x"})
    )


def test_a_stale_last_applied_annotation_is_ignored() -> None:
    stale = git({"podSelector": {"matchLabels": {"app": "old"}}})
    assert_same(git({}), live(served_spec(), applied=stale))


def test_last_applied_written_in_git_is_ignored_too() -> None:
    written = git({}, annotations={LAST_APPLIED: "{}", "owner": "x"})
    policy = parse_policy(written)
    assert policy.annotations == (("owner", "x"),)


# ---------------------------------------------------------------------------------------------
# Validation


def _rejected(obj: Any, **kwargs: Any) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(obj, **kwargs)
    return info.value


def assert_rejected(obj: Any, path: str, fragment: str, *, who: str = WHO) -> PolicyError:
    """Rejected at ``path``, with a message naming the object and containing ``fragment``."""
    err = _rejected(obj)
    assert err.path == path
    assert err.obj == who
    assert str(err).startswith(f"{who}: {path}: ")
    assert fragment in err.message
    return err


def ingress_from(*peers: Any) -> dict[str, Any]:
    return git({"ingress": [{"from": list(peers)}]})


def ingress_ports(*ports: Any) -> dict[str, Any]:
    return git({"ingress": [{"ports": list(ports)}]})


def ip_block(cidr: Any, *excepts: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": cidr}
    if excepts:
        block["except"] = list(excepts)
    return git({"ingress": [{"from": [{"ipBlock": block}]}]})


def pod_selector(selector: Any) -> dict[str, Any]:
    return git({"podSelector": selector})


def expression(**fields: Any) -> dict[str, Any]:
    return pod_selector({"matchExpressions": [fields]})


PEER = "spec.ingress[0].from[0]"
BLOCK = "spec.ingress[0].from[0].ipBlock"
PORT = "spec.ingress[0].ports[0]"
EXPR = "spec.podSelector.matchExpressions[0]"

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    # peers
    ("empty peer", ingress_from({}), PEER, "must specify a peer"),
    ("all-null peer", ingress_from({"podSelector": None, "ipBlock": None}), PEER, "must specify"),
    (
        "ipBlock with podSelector",
        ingress_from({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}),
        PEER,
        "ipBlock may not be combined",
    ),
    (
        "ipBlock with namespaceSelector",
        git(
            {
                "egress": [
                    {
                        "to": [
                            {"podSelector": {}},
                            {
                                "ipBlock": {"cidr": "10.0.0.0/8"},
                                "namespaceSelector": {"matchLabels": {"team": "a"}},
                            },
                        ]
                    }
                ]
            }
        ),
        "spec.egress[0].to[1]",
        "ipBlock may not be combined",
    ),
    # ipBlock
    (
        "except outside cidr",
        ip_block("10.0.0.0/8", "192.168.0.0/16"),
        f"{BLOCK}.except[0]",
        "subset",
    ),
    ("except equal to cidr", ip_block("10.0.0.0/8", "10.0.0.0/8"), f"{BLOCK}.except[0]", "strict"),
    (
        "except wider than cidr",
        ip_block("10.1.0.0/16", "10.0.0.0/8"),
        f"{BLOCK}.except[0]",
        "subset",
    ),
    (
        "IPv6 except in IPv4 cidr",
        ip_block("10.0.0.0/8", "10.1.0.0/16", "2001:db8::/64"),
        f"{BLOCK}.except[1]",
        "subset",
    ),
    (
        "IPv4 except in IPv6 cidr",
        ip_block("2001:db8::/32", "10.0.0.0/8"),
        f"{BLOCK}.except[0]",
        "subset",
    ),
    ("prefix too long", ip_block("10.0.0.0/33"), f"{BLOCK}.cidr", "not a valid CIDR"),
    ("octet too big", ip_block("10.0.0.256/24"), f"{BLOCK}.cidr", "not a valid CIDR"),
    ("not an address", ip_block("not-a-cidr"), f"{BLOCK}.cidr", "not a valid CIDR"),
    ("bare IPv4 address", ip_block("10.0.0.1"), f"{BLOCK}.cidr", "not a valid CIDR"),
    ("bare IPv6 address", ip_block("2001:db8::1"), f"{BLOCK}.cidr", "not a valid CIDR"),
    (
        "netmask instead of prefix",
        ip_block("10.0.0.0/255.0.0.0"),
        f"{BLOCK}.cidr",
        "not a valid CIDR",
    ),
    (
        "invalid except",
        ip_block("10.0.0.0/8", "10.1.0.0/x"),
        f"{BLOCK}.except[0]",
        "not a valid CIDR",
    ),
    (
        "cidr missing",
        ingress_from({"ipBlock": {"except": ["10.0.0.0/16"]}}),
        f"{BLOCK}.cidr",
        "required",
    ),
    ("cidr a number", ip_block(10), f"{BLOCK}.cidr", "must be a CIDR string, got a number"),
    # ports
    ("endPort without port", ingress_ports({"endPort": 90}), f"{PORT}.endPort", "numeric port"),
    (
        "endPort with named port",
        ingress_ports({"port": "http", "endPort": 90}),
        f"{PORT}.endPort",
        "numeric port",
    ),
    (
        "endPort below port",
        ingress_ports({"port": 100, "endPort": 90}),
        f"{PORT}.endPort",
        "greater than or equal to port 100",
    ),
    ("port 0", ingress_ports({"port": 0}), f"{PORT}.port", "outside 1-65535"),
    ("port 65536", ingress_ports({"port": 65536}), f"{PORT}.port", "outside 1-65535"),
    ("negative port", ingress_ports({"port": -80}), f"{PORT}.port", "outside 1-65535"),
    ("endPort 65536", ingress_ports({"port": 1, "endPort": 65536}), f"{PORT}.endPort", "outside"),
    ("ICMP", ingress_ports({"protocol": "ICMP"}), f"{PORT}.protocol", "unsupported protocol"),
    ("lower-case tcp", ingress_ports({"protocol": "tcp"}), f"{PORT}.protocol", "unsupported"),
    ("protocol a list", ingress_ports({"protocol": ["TCP"]}), f"{PORT}.protocol", "unsupported"),
    # unknown fields
    ("typo in spec", git({"ingres": [{}]}), "spec.ingres", "unknown field"),
    ("typo at the top", {**git(), "sepc": {}}, "sepc", "unknown field"),
    ("typo in rule", git({"ingress": [{"form": [FRONTEND]}]}), "spec.ingress[0].form", "unknown"),
    (
        "from in an egress rule",
        git({"egress": [{"from": [FRONTEND]}]}),
        "spec.egress[0].from",
        "unknown",
    ),
    (
        "to in an ingress rule",
        git({"ingress": [{"to": [FRONTEND]}]}),
        "spec.ingress[0].to",
        "unknown",
    ),
    ("typo in peer", ingress_from({"podselector": {}}), f"{PEER}.podselector", "unknown field"),
    (
        "typo in ipBlock",
        ingress_from({"ipBlock": {"cidr": "10.0.0.0/8", "excepts": []}}),
        f"{BLOCK}.excepts",
        "unknown field",
    ),
    (
        "typo in port",
        ingress_ports({"port": 80, "targetPort": 8080}),
        f"{PORT}.targetPort",
        "unknown",
    ),
    (
        "typo in selector",
        pod_selector({"matchLabel": {"app": "web"}}),
        "spec.podSelector.matchLabel",
        "unknown",
    ),
    (
        "typo in expression",
        expression(key="a", operator="In", value=["b"]),
        f"{EXPR}.value",
        "unknown",
    ),
    # wrong types
    (
        "ingress not a list",
        git({"ingress": {"from": [FRONTEND]}}),
        "spec.ingress",
        "must be a list, got an object",
    ),
    (
        "from not a list",
        git({"ingress": [{"from": FRONTEND}]}),
        "spec.ingress[0].from",
        "must be a list",
    ),
    (
        "rule not an object",
        git({"ingress": ["all"]}),
        "spec.ingress[0]",
        "must be an object, got a string",
    ),
    ("spec not an object", git([]), "spec", "must be an object, got a list"),
    ("port a boolean", ingress_ports({"port": True}), f"{PORT}.port", "got a boolean"),
    ("port a fraction", ingress_ports({"port": 80.5}), f"{PORT}.port", "must be an integer"),
    (
        "endPort a string",
        ingress_ports({"port": 80, "endPort": "90"}),
        f"{PORT}.endPort",
        "got a string",
    ),
    (
        "label value a number",
        git({}, labels={"version": 2}),
        "metadata.labels.version",
        "got a number",
    ),
    (
        "label value a boolean",
        git({}, labels={"canary": True}),
        "metadata.labels.canary",
        "got a boolean",
    ),
    ("labels a list", git({}, labels=["app=web"]), "metadata.labels", "must be an object"),  # type: ignore[arg-type]
    (
        "selector label value a number",
        pod_selector({"matchLabels": {"tier": 1}}),
        "spec.podSelector.matchLabels.tier",
        "got a number",
    ),
    (
        "annotation value a number",
        git({}, annotations={"replicas": 3}),
        "metadata.annotations.replicas",
        "number",
    ),
    (
        "annotation key a number",
        git({}, annotations={1: "one", "a": "b"}),
        "metadata.annotations",
        "key 1",
    ),
    ("policyTypes a string", git({"policyTypes": "Ingress"}), "spec.policyTypes", "must be a list"),
    (
        "values a string",
        expression(key="env", operator="In", values="prod"),
        f"{EXPR}.values",
        "list",
    ),
    # matchExpressions
    (
        "unknown operator",
        expression(key="env", operator="Equals", values=["a"]),
        f"{EXPR}.operator",
        "Equals",
    ),
    (
        "lower-case operator",
        expression(key="env", operator="in", values=["a"]),
        f"{EXPR}.operator",
        "unsupported",
    ),
    (
        "missing operator",
        expression(key="env", values=["a"]),
        f"{EXPR}.operator",
        "unsupported operator",
    ),
    ("In without values", expression(key="env", operator="In"), f"{EXPR}.values", "non-empty"),
    (
        "In with empty values",
        expression(key="env", operator="In", values=[]),
        f"{EXPR}.values",
        "non-empty",
    ),
    (
        "NotIn without values",
        expression(key="env", operator="NotIn"),
        f"{EXPR}.values",
        "non-empty",
    ),
    (
        "Exists with values",
        expression(key="env", operator="Exists", values=["a"]),
        f"{EXPR}.values",
        "empty",
    ),
    (
        "DoesNotExist with values",
        expression(key="env", operator="DoesNotExist", values=["a"]),
        f"{EXPR}.values",
        "must be empty",
    ),
    ("missing key", expression(operator="Exists"), f"{EXPR}.key", "required"),
    (
        "invalid value",
        expression(key="env", operator="In", values=["a b"]),
        f"{EXPR}.values[0]",
        "label value",
    ),
    (
        "invalid expression in a peer",
        ingress_from(
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "env", "operator": "Exists"},
                        {"key": "team", "operator": "Has"},
                    ]
                }
            }
        ),
        f"{PEER}.namespaceSelector.matchExpressions[1].operator",
        "unsupported operator",
    ),
    # named ports
    ("number as a string", ingress_ports({"port": "80"}), f"{PORT}.port", "unquoted"),
    ("leading hyphen", ingress_ports({"port": "-http"}), f"{PORT}.port", "not a valid port name"),
    ("trailing hyphen", ingress_ports({"port": "http-"}), f"{PORT}.port", "not a valid port name"),
    (
        "double hyphen",
        ingress_ports({"port": "http--alt"}),
        f"{PORT}.port",
        "not a valid port name",
    ),
    ("upper case", ingress_ports({"port": "HTTP"}), f"{PORT}.port", "not a valid port name"),
    ("underscore", ingress_ports({"port": "http_alt"}), f"{PORT}.port", "not a valid port name"),
    (
        "16 characters",
        ingress_ports({"port": "abcdefghijklmnop"}),
        f"{PORT}.port",
        "not a valid port name",
    ),
    ("empty name", ingress_ports({"port": ""}), f"{PORT}.port", "not a valid port name"),
    (
        "trailing newline",
        ingress_ports({"port": "http\n"}),
        f"{PORT}.port",
        "not a valid port name",
    ),
    # policyTypes
    (
        "lower-case type",
        git({"policyTypes": ["ingress"]}),
        "spec.policyTypes[0]",
        "unsupported value",
    ),
    ("unknown type", git({"policyTypes": ["Ingress", "Both"]}), "spec.policyTypes[1]", "'Both'"),
    (
        "three types",
        git({"policyTypes": ["Ingress", "Egress", "Ingress"]}),
        "spec.policyTypes",
        "more than two",
    ),
    # apiVersion and kind
    (
        "v1beta1",
        {**git(), "apiVersion": "networking.k8s.io/v1beta1"},
        "apiVersion",
        "networking.k8s.io/v1",
    ),
    (
        "extensions",
        {**git(), "apiVersion": "extensions/v1beta1"},
        "apiVersion",
        "extensions/v1beta1",
    ),
    ("core v1", {**git(), "apiVersion": "v1"}, "apiVersion", "must be"),
    ("another kind", {**git(), "kind": "Pod"}, "kind", "'Pod'"),
    # metadata
    ("label key with empty prefix", git({}, labels={"/app": "web"}), "metadata.labels", "prefix"),
    (
        "label key upper-case prefix",
        git({}, labels={"Example.com/app": "web"}),
        "metadata.labels",
        "prefix",
    ),
    ("label key leading hyphen", git({}, labels={"-app": "web"}), "metadata.labels", "label name"),
    ("label key too long", git({}, labels={"a" * 64: "web"}), "metadata.labels", "label name"),
    (
        "label value too long",
        git({}, labels={"app": "w" * 64}),
        "metadata.labels.app",
        "label value",
    ),
    (
        "label value with space",
        git({}, labels={"app": "my web"}),
        "metadata.labels.app",
        "label value",
    ),
    (
        "label value trailing newline",
        git({}, labels={"app": "web\n"}),
        "metadata.labels.app",
        "label value",
    ),
]


@pytest.mark.parametrize(
    ("obj", "path", "fragment"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_policy_is_rejected(obj: dict[str, Any], path: str, fragment: str) -> None:
    assert_rejected(obj, path, fragment)


@pytest.mark.parametrize("name", [ABSENT, None, ""], ids=["absent", "null", "empty"])
def test_missing_name_is_rejected(name: Any) -> None:
    obj = git({})
    del obj["metadata"]["name"]
    if name is not ABSENT:
        obj["metadata"]["name"] = name
    err = assert_rejected(obj, "metadata.name", "is required", who="NetworkPolicy shop/<unnamed>")
    assert str(err) == "NetworkPolicy shop/<unnamed>: metadata.name: is required"


def test_missing_metadata_is_rejected() -> None:
    obj = git({})
    del obj["metadata"]
    assert_rejected(obj, "metadata.name", "is required", who="NetworkPolicy default/<unnamed>")


@pytest.mark.parametrize("name", ["Web", "web_1", "web.", "-web", "web\n", "a" * 254], ids=repr)
def test_invalid_name_is_rejected(name: str) -> None:
    assert_rejected(
        git({}, name=name),
        "metadata.name",
        "not a valid DNS subdomain",
        who=f"NetworkPolicy shop/{name}",
    )


@pytest.mark.parametrize("namespace", ["Shop", "shop.eu", "shop\n", "a" * 64], ids=repr)
def test_invalid_namespace_is_rejected(namespace: str) -> None:
    assert_rejected(
        git({}, namespace=namespace),
        "metadata.namespace",
        "not a valid namespace",
        who=f"NetworkPolicy {namespace}/web",
    )


def test_errors_name_the_defaulted_namespace() -> None:
    err = _rejected(git({"ingress": [{"from": [{}]}]}, namespace=None), default_namespace="team-a")
    assert err.obj == "NetworkPolicy team-a/web"
    assert str(err) == "NetworkPolicy team-a/web: spec.ingress[0].from[0]: " + err.message


def test_errors_on_a_live_object_name_it_too() -> None:
    doc = live_doc()
    doc["spec"]["ingress"][0]["ports"][1]["port"] = "HTTP"
    err = assert_rejected(doc, "spec.ingress[0].ports[1].port", "'HTTP'")
    assert isinstance(err, ValueError)


def test_a_non_object_is_rejected() -> None:
    err = _rejected(["not", "a", "policy"])
    assert (err.obj, err.path) == ("NetworkPolicy", "")
    assert "must be an object, got a list" in str(err)


# The boundaries of the rules above are accepted.

VALID: list[tuple[str, dict[str, Any]]] = [
    ("port 1", ingress_ports({"port": 1})),
    ("port 65535", ingress_ports({"port": 65535})),
    ("endPort equal to port", ingress_ports({"port": 8080, "endPort": 8080})),
    ("endPort 65535", ingress_ports({"port": 32000, "endPort": 65535})),
    (
        "SCTP",
        ingress_ports({"protocol": "SCTP", "port": 9}),
    ),
    ("except one bit longer", ip_block("10.0.0.0/8", "10.128.0.0/9")),
    ("except a host", ip_block("10.0.0.0/8", "10.1.2.3/32")),
    ("IPv6 except", ip_block("2001:db8::/32", "2001:db8:1::/48", "2001:db8::1/128")),
    ("everything but", ip_block("0.0.0.0/0", "10.0.0.0/8", "192.168.0.0/16")),
    ("IPv6 everything", ip_block("::/0")),
    ("host cidr", ip_block("192.168.1.1/32")),
    (
        "ipBlock with null selectors",
        ingress_from({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": None}),
    ),
    ("both selectors", ingress_from({"podSelector": {}, "namespaceSelector": {}})),
    ("Exists with empty values", expression(key="canary", operator="Exists", values=[])),
    ("NotIn", expression(key="env", operator="NotIn", values=["dev"])),
    ("prefixed label key", git({}, labels={"app.kubernetes.io/name": "web"})),
    ("empty label value", git({}, labels={"canary": ""})),
    ("63-character label value", git({}, labels={"app": "w" * 63})),
    ("duplicated policy type", git({"policyTypes": ["Egress", "Egress"]})),
    ("no spec", git()),
    ("no apiVersion or kind", {"metadata": {"name": "web", "namespace": "shop"}}),
]


@pytest.mark.parametrize("obj", [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_edge_cases_are_accepted(obj: dict[str, Any]) -> None:
    policy = parse_policy(obj)
    assert parse_policy(to_manifest(policy)) == policy


@pytest.mark.parametrize(
    "name", ["http", "h2c", "metrics-9090", "9090-metrics", "a", "abcdefghijklmno"]
)
def test_valid_port_names_are_kept(name: str) -> None:
    policy = assert_same(
        ingress_ports({"port": name}),
        live(served_spec(ingress=[{"ports": [{"port": name, "protocol": "TCP"}]}])),
    )
    assert policy.spec.ingress[0].ports == (PolicyPort("TCP", name),)
    assert to_manifest(policy)["spec"]["ingress"][0]["ports"][0]["port"] == name


def test_named_port_differs_from_its_number() -> None:
    assert parse_policy(ingress_ports({"port": "http"})) != parse_policy(
        ingress_ports({"port": 80})
    )


def test_policy_error_carries_its_parts() -> None:
    err = PolicyError("NetworkPolicy a/b", "spec.ingress[0]", "bad")
    assert (err.obj, err.path, err.message) == ("NetworkPolicy a/b", "spec.ingress[0]", "bad")
    assert str(err) == "NetworkPolicy a/b: spec.ingress[0]: bad"
    assert str(PolicyError("", "", "bad")) == "bad"


# ---------------------------------------------------------------------------------------------
# live_origin


def test_origin_of_a_live_object_is_its_latest_write() -> None:
    assert parse_policy(live_doc()).origin == LiveOrigin(
        "kubectl-edit", "Update", EDITED_AT, RESOURCE_VERSION
    )


def test_live_origin_picks_the_latest_time_wherever_it_is_listed() -> None:
    meta = {
        "resourceVersion": "17",
        "managedFields": [
            {"manager": "kubectl-client-side-apply", "operation": "Update", "time": APPLIED_AT},
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-27T12:03:22Z"},
            {"manager": "argocd-controller", "operation": "Apply", "time": "2026-11-25T08:00:00Z"},
        ],
    }
    assert live_origin(meta) == LiveOrigin("kubectl-edit", "Update", EDITED_AT, "17")
    meta["managedFields"].reverse()
    assert live_origin(meta) == LiveOrigin("kubectl-edit", "Update", EDITED_AT, "17")


def test_live_origin_prefers_the_later_entry_on_a_tie_and_a_timed_entry_over_an_untimed() -> None:
    meta = {
        "resourceVersion": "17",
        "managedFields": [
            {"manager": "a", "operation": "Update", "time": EDITED_AT},
            {"manager": "b", "operation": "Apply", "time": EDITED_AT},
            {"manager": "c", "operation": "Update"},
        ],
    }
    assert live_origin(meta) == LiveOrigin("b", "Apply", EDITED_AT, "17")


def test_live_origin_is_none_for_an_object_from_git() -> None:
    assert live_origin({"name": "web", "namespace": "shop"}) is None
    assert parse_policy(git_doc()).origin is None


@pytest.mark.parametrize("entries", [ABSENT, [], None], ids=["absent", "empty", "null"])
def test_live_origin_keeps_the_resource_version_without_managed_fields(entries: Any) -> None:
    meta: dict[str, Any] = {"resourceVersion": "17"}
    if entries is not ABSENT:
        meta["managedFields"] = entries
    assert live_origin(meta) == LiveOrigin(None, None, None, "17")
    meta["resourceVersion"] = None
    assert live_origin(meta) is None


def test_live_origin_without_a_resource_version() -> None:
    meta = {"managedFields": managed_fields()}
    assert live_origin(meta) == LiveOrigin("kubectl-edit", "Update", EDITED_AT, None)


def test_origin_is_not_part_of_equality() -> None:
    first = parse_policy(live_doc())
    doc = live_doc()
    doc["metadata"]["managedFields"][1]["manager"] = "someone-else"
    second = parse_policy(doc)
    assert first.origin != second.origin
    assert first == second


@pytest.mark.parametrize(
    ("origin", "text"),
    [
        (
            LiveOrigin("kubectl-edit", "Update", EDITED_AT, "17"),
            "changed by kubectl-edit (Update) at 2026-11-27T12:03:22Z",
        ),
        (
            LiveOrigin("kubectl-edit", None, EDITED_AT),
            "changed by kubectl-edit at 2026-11-27T12:03:22Z",
        ),
        (LiveOrigin("helm", "Apply", None), "changed by helm (Apply)"),
        (LiveOrigin(None, None, None, "17"), "changed by an unknown manager"),
        (
            LiveOrigin(None, "Update", EDITED_AT),
            "changed by an unknown manager (Update) at " + EDITED_AT,
        ),
    ],
)
def test_live_origin_describe(origin: LiveOrigin, text: str) -> None:
    assert origin.describe() == text


# ---------------------------------------------------------------------------------------------
# LabelSelector.matches


def selector_of(selector: dict[str, Any]) -> LabelSelector:
    return parse_policy(pod_selector(selector)).spec.pod_selector


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {}, True),
        ({}, {"app": "web"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "web", "tier": "1"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        ({"matchLabels": {"app": "web"}}, {}, False),
        ({"matchLabels": {"canary": ""}}, {"canary": ""}, True),
        ({"matchLabels": {"canary": ""}}, {}, False),
        (
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]},
            {"env": "b"},
            True,
        ),
        (
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]},
            {"env": "c"},
            False,
        ),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]},
            {"env": "b"},
            True,
        ),
        (
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]},
            {"env": "a"},
            False,
        ),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": "a"}, False),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}],
            },
            {"app": "web", "env": "dev"},
            False,
        ),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}],
            },
            {"app": "web"},
            True,
        ),
    ],
)
def test_label_selector_matches(
    selector: dict[str, Any], labels: dict[str, str], matches: bool
) -> None:
    assert selector_of(selector).matches(labels) is matches


def test_label_selector_str() -> None:
    selector = selector_of(
        {
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "team", "operator": "NotIn", "values": ["x"]},
                {"key": "canary", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert str(selector) == "app=shop,tier=web,env in (prod,staging),team notin (x),canary,!legacy"
    assert not selector.is_empty


def test_typo_in_metadata_is_rejected_like_strict_field_validation() -> None:
    obj = git({})
    obj["metadata"]["lables"] = {"app": "web"}
    assert_rejected(obj, "metadata.lables", "unknown field")


def test_every_object_meta_field_the_server_writes_is_accepted() -> None:
    obj = live(served_spec())
    obj["metadata"].update(
        {
            "generateName": "web-",
            "finalizers": ["example.com/keep"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}],
            "deletionTimestamp": "2026-11-27T00:00:00Z",
            "deletionGracePeriodSeconds": 0,
        }
    )
    assert_same(git({}), obj)


def test_a_policy_sent_to_another_process_hashes_there_afresh() -> None:
    """Hashes are cached on the values (they key the model's caches), but a string's hash
    differs between processes: a pickled policy (as the desired-state workers send them)
    must carry no cached hash, or lookups in the receiving process would miss."""
    policy = parse_policy(git_doc())
    hash(policy)
    hash(policy.spec)
    copied = pickle.loads(pickle.dumps(policy))  # noqa: S301 - our own bytes
    assert copied == policy
    assert copied._hash is None
    assert copied.spec._hash is None
    assert hash(copied) == hash(policy)
    # In a process with another hash seed, the unpickled policy and the same document
    # parsed there must find each other in a dict.
    script = (
        "import json, pickle, sys\n"
        "from driftwatch.policy import parse_policy\n"
        "sent = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
        "fresh = parse_policy(json.loads(sys.argv[2]))\n"
        "print(fresh in {sent: 1}, fresh.spec in {sent.spec: 1})\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, pickle.dumps(policy).hex(), json.dumps(git_doc())],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert out.stdout.split() == [b"True", b"True"]
