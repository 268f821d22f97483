"""The admission webhook's decision (``driftwatch.drift.admission``), a pure function from an
AdmissionReview, the desired state, the rule engine and the settings to the response:
CREATE, UPDATE and DELETE against Git, reverting drift, objects driftwatch cannot read, the
desired state not loaded yet, unprotected namespaces, the identity that applies Git, the
ignore rules, and reviews that are not AdmissionReviews at all; and the ``admission:``
section of the configuration."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from driftwatch.drift import IgnoreRules
from driftwatch.drift.admission import (
    AdmissionPolicy,
    GitIdentities,
    InvalidReview,
    admission_review,
    decide,
)
from driftwatch.policy import NetworkPolicy, Provenance, parse_policy
from driftwatch.rules import RuleEngine, RuleOptions
from driftwatch.settings import Settings, parse_settings

ROOT = Path(__file__).resolve().parents[1]
FRONTEND = ROOT / "config" / "examples" / "policies" / "shop" / "frontend.yaml"
SOURCE = Provenance("clusters/prod/shop/frontend.yaml", 1, "0123abc")
ENGINE = RuleEngine(RuleOptions())
DENY = AdmissionPolicy()
NAME = "frontend-allow-from-ingress"


def git_doc() -> dict[str, Any]:
    """The Git manifest of shop/frontend-allow-from-ingress."""
    for doc in yaml.safe_load_all(FRONTEND.read_text()):
        if doc["metadata"]["name"] == NAME:
            return dict(doc)
    raise AssertionError("example policy missing")


def as_served(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as the API server sends it in a review: server fields and defaults added."""
    served = copy.deepcopy(doc)
    served["metadata"].update(
        uid="5b1c0e8e-0000-4000-8000-000000000001",
        resourceVersion="42",
        generation=3,
        creationTimestamp="2026-11-27T10:00:00Z",
        managedFields=[
            {
                "manager": "kubectl-edit",
                "operation": "Update",
                "apiVersion": "networking.k8s.io/v1",
                "time": "2026-11-27T10:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {}},
            }
        ],
    )
    served["spec"].setdefault("policyTypes", ["Ingress"])
    for rule in served["spec"].get("ingress", []):
        for port in rule.get("ports", []):
            port.setdefault("protocol", "TCP")
    return served


def world_open() -> dict[str, Any]:
    doc = git_doc()
    doc["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    return doc


DESIRED: dict[tuple[str, str], NetworkPolicy] = {
    ("shop", NAME): dataclasses.replace(parse_policy(git_doc()), source=SOURCE)
}


def lookup(namespace: str, name: str) -> NetworkPolicy | None:
    return DESIRED.get((namespace, name))


def review(
    operation: str,
    obj: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    *,
    namespace: str = "shop",
    name: str = NAME,
    user: str = "alice@example.com",
    manager: str | None = "kubectl-edit",
    resource: str = "networkpolicies",
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
) -> dict[str, Any]:
    options: dict[str, Any] = {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    if manager is not None:
        options["fieldManager"] = manager
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": resource},
            "namespace": namespace,
            "name": name,
            "operation": operation,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
            "options": options,
        },
    }


def answer(body: dict[str, Any], policy: AdmissionPolicy = DENY, **kw: Any) -> dict[str, Any]:
    response = admission_review(body, lookup, ENGINE, policy, **kw)
    assert response["apiVersion"] == "admission.k8s.io/v1"
    assert response["kind"] == "AdmissionReview"
    assert response["response"]["uid"] == body["request"]["uid"]  # echoed
    return response["response"]  # type: ignore[no-any-return]


def test_a_create_or_update_equal_to_git_is_allowed_even_as_the_server_sends_it() -> None:
    for operation in ("CREATE", "UPDATE"):
        result = answer(review(operation, as_served(git_doc()), as_served(world_open())))
        assert result == {"uid": result["uid"], "allowed": True}  # no warnings either


def test_an_update_that_opens_a_policy_to_the_world_is_denied_naming_git_and_the_risk() -> None:
    result = answer(review("UPDATE", as_served(world_open()), as_served(git_doc())))
    assert result["allowed"] is False
    status = result["status"]
    assert (status["code"], status["reason"], status["status"]) == (403, "Forbidden", "Failure")
    message = status["message"]
    assert "NetworkPolicy shop/frontend-allow-from-ingress" in message
    assert "clusters/prod/shop/frontend.yaml:1@0123abc" in message  # path:line@commit
    assert "severity critical" in message
    assert "from every IPv4 address on the internet" in message  # the worst finding
    assert "\n" not in message
    assert "warnings" not in result


def test_warn_allows_the_same_update_with_the_message_as_a_warning() -> None:
    policy = AdmissionPolicy(enforce="warn")
    result = answer(review("UPDATE", as_served(world_open()), as_served(git_doc())), policy)
    assert result["allowed"] is True
    assert "status" not in result
    (warning,) = result["warnings"]
    assert warning.startswith("driftwatch: ")
    assert "clusters/prod/shop/frontend.yaml:1@0123abc" in warning
    assert "severity critical" in warning


def test_create_of_a_policy_git_does_not_have_is_denied_as_unmanaged() -> None:
    doc = world_open()
    doc["metadata"]["name"] = "rogue"
    result = answer(review("CREATE", doc, name="rogue"))
    assert result["allowed"] is False
    assert "NetworkPolicy shop/rogue is not in Git" in result["status"]["message"]
    assert "severity critical" in result["status"]["message"]


def test_delete_of_a_git_policy_is_denied_and_of_an_unmanaged_one_allowed() -> None:
    result = answer(review("DELETE", None, as_served(git_doc())))
    assert result["allowed"] is False
    message = result["status"]["message"]
    assert message.startswith("deleting NetworkPolicy shop/frontend-allow-from-ingress")
    assert "clusters/prod/shop/frontend.yaml:1@0123abc" in message
    assert "severity high" in message  # policy-missing
    # Deleting what Git does not have makes the cluster closer to Git.
    gone = answer(review("DELETE", None, as_served(world_open()), name="rogue"))
    assert gone == {"uid": gone["uid"], "allowed": True}


def test_reverting_drift_is_always_allowed() -> None:
    # The live object drifted; the write puts Git's version back.
    result = answer(review("UPDATE", as_served(git_doc()), as_served(world_open())))
    assert result["allowed"] is True
    # A DELETE's object is absent even if the API server sent one.
    body = review("DELETE", as_served(world_open()), as_served(world_open()), name="rogue")
    assert answer(body)["allowed"] is True


def test_an_object_driftwatch_cannot_parse_is_allowed_with_a_warning() -> None:
    doc = world_open()
    doc["spec"]["ingress"][0]["ports"][0]["port"] = 70000
    result = answer(review("UPDATE", doc, as_served(git_doc())))
    assert result["allowed"] is True
    (warning,) = result["warnings"]
    assert "cannot read this NetworkPolicy" in warning
    assert "70000" in warning or "port" in warning
    assert "the API server validates it" in warning
    not_an_object = answer(review("CREATE", "nonsense"))  # type: ignore[arg-type]
    assert not_an_object["allowed"] is True
    assert not_an_object["warnings"]


def test_before_the_desired_state_is_loaded_writes_are_allowed_with_a_warning() -> None:
    body = review("UPDATE", as_served(world_open()), as_served(git_doc()))
    response = admission_review(body, None, ENGINE, DENY)["response"]
    assert response["allowed"] is True
    assert "not loaded" in response["warnings"][0]
    assert decide(body, None, ENGINE, DENY).reason == "not-loaded"


def test_unprotected_namespaces_and_other_resources_are_allowed_silently() -> None:
    policy = AdmissionPolicy(namespaces=("prod-*", "payments"))
    body = review("UPDATE", as_served(world_open()), as_served(git_doc()))
    assert answer(body, policy) == {"uid": body["request"]["uid"], "allowed": True}
    assert decide(body, lookup, ENGINE, policy).reason == "unprotected"
    protected = AdmissionPolicy(namespaces=("sh*",))
    assert answer(body, protected)["allowed"] is False
    pods = review("UPDATE", {"kind": "Pod"}, resource="pods")
    assert decide(pods, lookup, ENGINE, DENY).reason == "not-reviewed"


def test_the_identity_that_applies_git_is_never_stopped() -> None:
    diverging = as_served(world_open())
    by_user = AdmissionPolicy(
        identities=GitIdentities(usernames=frozenset({"system:serviceaccount:argocd:ctl"}))
    )
    body = review("UPDATE", diverging, user="system:serviceaccount:argocd:ctl")
    assert answer(body, by_user)["allowed"] is True
    assert decide(body, lookup, ENGINE, by_user).reason == "git-identity"
    by_manager = AdmissionPolicy(identities=GitIdentities(field_managers=frozenset({"argocd"})))
    assert answer(review("UPDATE", diverging, manager="argocd"), by_manager)["allowed"] is True
    assert answer(review("DELETE", None, diverging, manager="argocd"), by_manager)["allowed"]
    # Anyone else is still refused.
    assert (
        answer(review("UPDATE", diverging, manager="kubectl-edit"), by_manager)["allowed"] is False
    )


def test_policies_left_alone_by_the_ignore_rules_are_allowed() -> None:
    doc = world_open()
    doc["metadata"]["annotations"] = {"driftwatch.io/ignore": "true"}
    assert answer(review("UPDATE", doc), ignore=IgnoreRules())["allowed"] is True
    ignored_ns = IgnoreRules(namespaces=("sh*",))
    assert answer(review("UPDATE", world_open()), ignore=ignored_ns)["allowed"] is True


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([], "AdmissionReview object"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "apiVersion"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}, "uid"),
    ],
)
def test_a_body_that_is_no_admission_review_is_refused(body: Any, complaint: str) -> None:
    with pytest.raises(InvalidReview, match=complaint):
        decide(body, lookup, ENGINE, DENY)


def test_a_review_missing_what_its_operation_needs_is_refused() -> None:
    with pytest.raises(InvalidReview, match=r"request\.object is required for UPDATE"):
        decide(review("UPDATE", None), lookup, ENGINE, DENY)
    body = review("UPDATE", git_doc())
    body["request"]["operation"] = "PATCH"
    with pytest.raises(InvalidReview, match="operation"):
        decide(body, lookup, ENGINE, DENY)
    body = review("UPDATE", git_doc())
    body["request"]["dryRun"] = "yes"
    with pytest.raises(InvalidReview, match="dryRun"):
        decide(body, lookup, ENGINE, DENY)


# -- the admission: section -----------------------------------------------------------------


def test_the_admission_section_becomes_the_policy(tmp_path: Path) -> None:
    text = """
admission:
  listen: "127.0.0.1:9443"
  cert_file: tls/tls.crt
  key_file: /etc/tls/tls.key
  enforce: warn
  namespaces: ["prod-*", payments]
  git_identities:
    service_accounts: ["argocd:argocd-application-controller"]
    usernames: [ci-deployer]
    field_managers: [argocd-controller]
"""
    settings = parse_settings(text, "driftwatch.yaml", base_dir=tmp_path)
    admission = settings.admission
    assert admission is not None
    assert admission.cert_file == tmp_path / "tls" / "tls.crt"  # relative to the file
    assert admission.address == ("127.0.0.1", 9443)
    policy = admission.to_policy()
    assert policy.enforce == "warn"
    assert policy.protects("prod-eu")
    assert policy.protects("payments")
    assert not policy.protects("shop")
    assert policy.identities.usernames == {
        "system:serviceaccount:argocd:argocd-application-controller",
        "ci-deployer",
    }
    assert policy.identities.field_managers == {"argocd-controller"}
    assert Settings().admission is None  # no section: no webhook


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"cert_file": "c", "key_file": "k", "enforce": "block"}, "enforce"),
        ({"cert_file": "c", "key_file": "k", "mode": "deny"}, "mode"),  # extra="forbid"
        ({"key_file": "k"}, "cert_file"),
        ({"cert_file": "c", "key_file": "k", "listen": "8443"}, "listen"),
        (
            {"cert_file": "c", "key_file": "k", "git_identities": {"service_accounts": ["argocd"]}},
            "service_accounts",
        ),
    ],
)
def test_a_bad_admission_section_is_refused(section: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({"admission": section})
