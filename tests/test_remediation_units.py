"""Remediation's parts: the ``remediation:`` settings (first match wins, the write scope),
the merge patch that removes what apply leaves, the sandbox's RBAC (403s, access reviews,
``kubectl auth can-i``), and the remediator's loop limit against a fake writer and clock
(stop after ``max_reverts``, notified once, re-armed when the window passes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from driftwatch.daemon.remediation import Remediator
from driftwatch.drift import Drift, DriftEvent, EventKind, ResolveReason
from driftwatch.drift.compare import compare
from driftwatch.live.apply import Applied, merge_patch_to
from driftwatch.policy import LiveOrigin, NetworkPolicy, PolicyKey, parse_policy
from driftwatch.rules import RuleEngine, RuleOptions, Severity
from driftwatch.sandbox import Sandbox, SandboxThread
from driftwatch.sandbox.kubectl import Kubectl
from driftwatch.sandbox.rbac import Denial
from driftwatch.settings import SettingsError, parse_settings
from driftwatch.settings.remediation import RemediationSettings
from tests.aio import async_test
from tests.test_daemon import EXAMPLES, NP, needs_kubectl

REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"

# --- settings ------------------------------------------------------------------------------


def remediation(text: str) -> RemediationSettings:
    return parse_settings(text, "driftwatch.yaml").remediation


def test_the_first_matching_matcher_decides_and_nothing_matched_is_alert() -> None:
    settings = remediation(
        """
remediation:
  matchers:
    - {namespaces: [payments], mode: alert}
    - {namespaces: ["prod-*", payments], min_severity: high, mode: revert}
    - {rules: [policy-unmanaged], mode: revert}
  window: 10m
"""
    )
    assert settings.window == 600.0
    assert settings.max_reverts == 3
    assert settings.dry_run is False
    critical = Severity.CRITICAL
    assert settings.mode_for("payments", critical, ["ingress-from-world"]) == "alert"
    assert settings.mode_for("prod-eu", critical, ["ingress-from-world"]) == "revert"
    assert settings.mode_for("prod-eu", Severity.MEDIUM, ["spec-modified"]) == "alert"
    assert settings.mode_for("prod-eu", None, []) == "alert"
    assert settings.mode_for("dev", Severity.MEDIUM, ["policy-unmanaged"]) == "revert"
    assert settings.mode_for("dev", Severity.CRITICAL, ["ingress-from-world"]) == "alert"
    assert settings.writes
    assert settings.write_scope() is None  # a glob, and a matcher for every namespace


@pytest.mark.parametrize(
    ("matchers", "dry_run", "writes", "scope"),
    [
        ([], False, False, ()),
        ([{"namespaces": ["shop", "pay"], "mode": "revert"}], False, True, ("shop", "pay")),
        ([{"namespaces": ["shop"], "mode": "revert"}], True, False, ("shop",)),
        ([{"namespaces": ["shop"], "mode": "alert"}, {"mode": "revert"}], False, True, None),
        ([{"namespaces": ["shop?"], "mode": "revert"}], False, True, None),
    ],
)
def test_what_start_up_checks(
    matchers: list[dict[str, Any]], dry_run: bool, writes: bool, scope: tuple[str, ...] | None
) -> None:
    settings = RemediationSettings.model_validate({"matchers": matchers, "dry_run": dry_run})
    assert settings.writes is writes
    assert settings.write_scope() == scope


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("remediation: {mode: revert}", "remediation.mode: unknown field"),
        ("remediation: {matchers: [{mode: fix}]}", "'alert' or 'revert'"),
        ("remediation: {matchers: [{rules: [no-such-rule]}]}", "unknown rule id no-such-rule"),
        ("remediation: {matchers: [{min_severity: huge}]}", "'critical'"),
        ("remediation: {max_reverts: 0}", "greater than or equal to 1"),
        ("remediation: {window: 0s}", "at least 1s"),
        ("remediation: {matchers: [{namespace: [a]}]}", "matchers[0].namespace: unknown field"),
    ],
)
def test_mistakes_are_reported_with_the_field(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match="remediation") as caught:
        parse_settings(text, "driftwatch.yaml")
    assert message in str(caught.value)


# --- the merge patch -------------------------------------------------------------------------


def test_the_merge_patch_removes_what_git_does_not_have_and_replaces_lists() -> None:
    live = {
        "metadata": {"labels": {"a": "1", "extra": "x"}, "annotations": {}},
        "spec": {"podSelector": {"matchLabels": {"app": "web", "tier": "x"}}, "egress": [{}]},
    }
    want = {
        "metadata": {"labels": {"a": "1"}, "annotations": {"note": "n"}},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": []}]},
    }
    assert merge_patch_to(live, want) == {
        "metadata": {"labels": {"extra": None}, "annotations": {"note": "n"}},
        "spec": {
            "podSelector": {"matchLabels": {"tier": None}},
            "egress": None,
            "ingress": [{"from": []}],
        },
    }
    assert merge_patch_to(want, want) == {}


# --- the sandbox's RBAC ----------------------------------------------------------------------


def review(verb: str, namespace: str | None = None) -> dict[str, Any]:
    attributes = {"group": "networking.k8s.io", "resource": "networkpolicies", "verb": verb}
    if namespace is not None:
        attributes["namespace"] = namespace
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }


@contextlib.asynccontextmanager
async def session(sb: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(sb.url) as http:
        yield http


@async_test
async def test_access_reviews_and_403s_follow_the_denial_rules() -> None:
    async with Sandbox(seed=[EXAMPLES]) as sb, session(sb) as http:

        async def allowed(verb: str, namespace: str | None = None) -> bool:
            async with http.post(REVIEWS, json=review(verb, namespace)) as answer:
                assert answer.status == 201
                body = await answer.json()
                assert body["kind"] == "SelfSubjectAccessReview"
                return bool(body["status"]["allowed"])

        assert await allowed("patch")
        assert await allowed("delete", "shop")
        rules = {"deny": [{"verb": "patch", "resource": "networkpolicies", "namespace": "shop"}]}
        async with http.post("/_sandbox/rbac", json=rules) as answer:
            assert (await answer.json())["deny"][0]["verb"] == "patch"
        assert not await allowed("patch", "shop")
        assert not await allowed("patch")  # cluster-wide: denied somewhere
        assert await allowed("patch", "payments")
        assert await allowed("delete", "shop")
        path = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/default-deny"
        merge = {"Content-Type": "application/merge-patch+json"}
        async with http.patch(path, data=b'{"metadata": {}}', headers=merge) as answer:
            assert answer.status == 403
            status = await answer.json()
            assert status["reason"] == "Forbidden"
            assert status["message"] == (
                'networkpolicies.networking.k8s.io "default-deny" is forbidden: User'
                ' "system:serviceaccount:default:sandbox-user" cannot patch resource'
                ' "networkpolicies" in API group "networking.k8s.io" in the namespace "shop"'
            )
        async with http.get(path) as answer:
            assert answer.status == 200  # reads are not denied
        # An apply that would create the object needs create too.
        sb.rbac.deny([Denial("create", "networkpolicies")])
        apply = {"Content-Type": "application/apply-patch+yaml"}
        body = yaml.safe_dump({"apiVersion": NP[0], "kind": NP[1], "metadata": {"name": "x"}})
        new = path.replace("default-deny", "x") + "?fieldManager=t"
        async with http.patch(new, data=body, headers=apply) as answer:
            assert answer.status == 403
        async with http.post("/_sandbox/rbac", json={"deny": []}) as answer:
            assert (await answer.json())["deny"] == []
        async with http.patch(new, data=body, headers=apply) as answer:
            assert answer.status == 201
        async with http.post("/_sandbox/rbac", json={"deny": [{"verb": "x"}]}) as answer:
            assert answer.status == 400


@pytest.mark.kubectl
@needs_kubectl
def test_kubectl_auth_can_i_asks_the_sandbox(tmp_path: Path) -> None:
    with SandboxThread(seed=[EXAMPLES]) as sandbox:
        kubectl = Kubectl(sandbox.kubeconfig_path(tmp_path), tmp_path / "home")
        can_i = ("auth", "can-i", "delete", "networkpolicies", "-n", "shop")
        assert kubectl.run(*can_i, check=False).stdout.strip() == "yes"
        sandbox.call(sandbox.sandbox.rbac.deny, [Denial("delete", "networkpolicies", "shop")])
        assert kubectl.run(*can_i, check=False).stdout.startswith("no - denied by the sandbox")
        assert kubectl.run(*can_i[:-1], "payments", check=False).stdout.strip() == "yes"


# --- the loop limit ----------------------------------------------------------------------------


class FakeWriter:
    def __init__(self) -> None:
        self.applied: list[NetworkPolicy] = []
        self.version = 100

    async def apply(self, desired: NetworkPolicy) -> Applied:
        self.applied.append(desired)
        self.version += 1
        return Applied(desired, (str(self.version),))

    async def delete(self, namespace: str, name: str) -> bool:
        return True

    async def denied(self, namespaces: Sequence[str] | None) -> list[tuple[str, str | None]]:
        return []


def git() -> NetworkPolicy:
    text = (EXAMPLES / "shop" / "frontend.yaml").read_text()
    return parse_policy(next(yaml.safe_load_all(text)))


def drifted(version: int, manager: str = "rogue-operator") -> Drift:
    desired = git()
    obj = next(yaml.safe_load_all((EXAMPLES / "shop" / "frontend.yaml").read_text()))
    obj["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    live = replace(parse_policy(obj), origin=LiveOrigin(manager, "Apply", None, str(version)))
    key = PolicyKey("test", desired.namespace, desired.name)
    return compare(key, desired, live, RuleEngine(RuleOptions()))


@async_test
async def test_the_loop_limit_stops_reverting_and_rearms_after_the_window() -> None:
    now = [1000.0]
    settings = RemediationSettings.model_validate(
        {"matchers": [{"mode": "revert"}], "max_reverts": 2, "window": "10m"}
    )
    current: dict[str, Drift | None] = {"drift": None}
    remediator = Remediator(
        settings, drift_of=lambda key: current["drift"], clock=lambda: now[0], workers=1
    )
    writer = FakeWriter()
    task = asyncio.create_task(remediator.serve(writer))

    async def write(version: int, *, manager: str = "rogue-operator") -> None:
        drift = drifted(version, manager)
        current["drift"] = drift
        remediator.observe(DriftEvent(EventKind.OPENED, drift.key, drift, None, "opened", 1))
        for _ in range(50):
            await asyncio.sleep(0)
        now[0] += 60

    try:
        await write(1)
        await write(2)
        assert remediator.stats.reverted == 2
        await write(3)
        await write(4)
        assert remediator.stats.reverted == 2, "stopped after max_reverts"
        assert remediator.stats.loops == 1, "the loop is raised once"
        # Its own write (a resourceVersion it wrote) is never reverted or counted.
        await write(writer.version, manager="driftwatch")
        assert remediator.stats.reverted == 2
        now[0] += 600  # the window passes without a revert
        await write(5)
        assert remediator.stats.reverted == 3
        assert remediator.stats.loops == 1
        # A resolve of its own write says so; another does not.
        drift = drifted(6)
        back = replace(git(), origin=LiveOrigin("driftwatch", "Apply", None, str(writer.version)))
        ours = DriftEvent(EventKind.RESOLVED, drift.key, drift, drift, "live matches Git again",
                          9, back)  # fmt: skip
        assert remediator.explain(ours).reason == ResolveReason.REVERTED
        theirs = replace(ours, live=replace(back, origin=LiveOrigin("kubectl", None, None, "1")))
        assert remediator.explain(theirs).reason == "live matches Git again"
        assert len(writer.applied) == 3
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
