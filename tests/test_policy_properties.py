"""Properties of the canonical form over generated NetworkPolicies.

What users rely on: a policy in Git and the same policy read back from the cluster compare
equal however they were spelled, and the canonical YAML driftwatch shows is stable and means
what the policy means.
"""

from __future__ import annotations

import random
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.policy import parse_policy, to_manifest, to_yaml
from tests.strategies import (
    LAST_APPLIED,
    ServerMeta,
    as_served,
    dns_labels,
    network_policies,
    server_metas,
    shuffle_keys,
)

# Generating one policy takes a few milliseconds, and PyYAML (pure Python) a few more: these
# counts keep the whole file well under 10 s.
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)
SERVED_SETTINGS = settings(max_examples=150, deadline=None)

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)  # for random.Random: key order only


def _shuffled(obj: dict[str, Any], seed: int) -> dict[str, Any]:
    result: dict[str, Any] = shuffle_keys(obj, random.Random(seed))  # noqa: S311 - not crypto
    return result


def _all_ports(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest["spec"]
    rules = spec.get("ingress", []) + spec.get("egress", [])
    return [port for rule in rules for port in rule.get("ports", [])]


@PROPERTY_SETTINGS
@given(network_policies())
def test_normalisation_is_idempotent(obj: dict[str, Any]) -> None:
    policy = parse_policy(obj)
    manifest = to_manifest(policy)
    again = parse_policy(manifest)
    assert again == policy
    assert to_manifest(again) == manifest
    assert parse_policy(to_manifest(again)) == again


@PROPERTY_SETTINGS
@given(network_policies())
def test_yaml_is_stable_and_reparses_to_an_equal_policy(obj: dict[str, Any]) -> None:
    policy = parse_policy(obj)
    text = to_yaml(policy)
    loaded = yaml.safe_load(text)
    assert loaded == to_manifest(policy)  # no value changed type or text on the way
    reparsed = parse_policy(loaded)
    assert reparsed == policy
    assert to_yaml(reparsed) == text


@PROPERTY_SETTINGS
@given(network_policies(), SEEDS)
def test_key_order_does_not_matter(obj: dict[str, Any], seed: int) -> None:
    shuffled = _shuffled(obj, seed)
    policy = parse_policy(obj)
    assert parse_policy(shuffled) == policy
    assert to_manifest(parse_policy(shuffled)) == to_manifest(policy)


@SERVED_SETTINGS
@given(network_policies(), dns_labels(), server_metas(), SEEDS)
def test_server_populated_fields_do_not_matter(
    obj: dict[str, Any], default_namespace: str, meta: ServerMeta, seed: int
) -> None:
    desired = parse_policy(obj, default_namespace=default_namespace)
    served = as_served(obj, default_namespace=default_namespace, meta=meta)
    live = parse_policy(served, default_namespace="not-used")
    assert live == desired
    assert to_manifest(live) == to_manifest(desired)
    assert parse_policy(_shuffled(served, seed)) == desired
    # The server fields were read (as the origin), just not compared.
    assert desired.origin is None
    assert live.origin is not None
    assert (live.origin.manager, live.origin.time) == ("kubectl-edit", meta.edited)
    assert live.origin.resource_version == meta.resource_version

    # What driftwatch shows is the served object minus the server's fields: every default
    # spelled out, nothing of the server's own.
    manifest = to_manifest(live)
    assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(manifest["metadata"]) <= {"name", "namespace", "labels", "annotations"}
    assert manifest["metadata"]["namespace"] == served["metadata"]["namespace"]
    assert LAST_APPLIED not in manifest["metadata"].get("annotations", {})
    served_types = served["spec"]["policyTypes"]  # as written: the server keeps the order
    assert manifest["spec"]["policyTypes"] == [
        t for t in ("Ingress", "Egress") if t in served_types
    ]
    assert manifest["spec"]["podSelector"] == served["spec"]["podSelector"]
    assert _all_ports(manifest) == _all_ports(served)  # protocol included, key order aside


@PROPERTY_SETTINGS
@given(network_policies(), st.data())
def test_changes_are_differences(obj: dict[str, Any], data: st.DataObject) -> None:
    """Equality is not vacuous: a changed label, name or rule list makes policies differ."""
    policy = parse_policy(obj)
    labels = dict(policy.labels)
    key = data.draw(st.sampled_from([*labels, "driftwatch.test/changed"]), label="key")
    labels[key] = labels.get(key, "") + "x"
    relabelled = parse_policy({**obj, "metadata": {**obj["metadata"], "labels": labels}})
    assert relabelled != policy
    assert to_manifest(relabelled) != to_manifest(policy)

    renamed = {**obj, "metadata": {**obj["metadata"], "name": obj["metadata"]["name"] + "-2"}}
    assert parse_policy(renamed) != policy

    spec = obj["spec"]
    for field in ("ingress", "egress"):
        if spec.get(field):
            shorter = parse_policy({**obj, "spec": {**spec, field: spec[field][1:]}})
            assert getattr(shorter.spec, field) == getattr(policy.spec, field)[1:]
            assert shorter != policy
