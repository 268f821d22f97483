"""The sandbox calls validating admission webhooks as the real API server does: it serves
``admissionregistration.k8s.io/v1`` ValidatingWebhookConfigurations (defaulted and
validated), and on writes of matching resources POSTs an AdmissionReview v1 over HTTPS
(``caBundle`` checked), honouring rules, selectors, ``failurePolicy`` and
``timeoutSeconds``; a denial is the real server's error, warnings are ``Warning`` headers.
A stand-in webhook (TLS from trustme, made here) records what it is sent."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import yaml
from aiohttp import web

from driftwatch.sandbox import DEFAULT_TOKEN, Sandbox
from driftwatch.sandbox.kubectl import Kubectl, kubectl_path
from tests.aio import async_test

Obj = dict[str, Any]
CONFIGS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
NP_PATH = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
HOOK = "check.tests.example"
SERVICE_HOST = "hook.tests.svc"


def allow(request: Obj) -> Obj:
    return {"uid": request["uid"], "allowed": True}


class StandIn:
    """A webhook over TLS: records each review, answers with ``answer(request)``."""

    def __init__(self, ca: trustme.CA, *names: str) -> None:
        self.cert = ca.issue_cert(*(names or ("127.0.0.1",)))
        self.requests: list[Obj] = []
        self.answer: Callable[[Obj], Obj] = allow
        self.delay = 0.0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.requests.append(review["request"])
        await asyncio.sleep(self.delay)
        return web.json_response(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": self.answer(review["request"]),
            }
        )

    async def __aenter__(self) -> StandIn:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        app = web.Application()
        app.router.add_post("/validate", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/validate"

    def operations(self) -> list[str]:
        return [r["operation"] for r in self.requests]


def bundle(ca: trustme.CA) -> str:
    return base64.b64encode(ca.cert_pem.bytes()).decode()


def configuration(client: Obj, called: str = "tests", **hook: Any) -> Obj:
    webhook: Obj = {
        "name": HOOK,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "clientConfig": client,
        "rules": [
            {
                "apiGroups": ["networking.k8s.io"],
                "apiVersions": ["v1"],
                "operations": ["*"],
                "resources": ["networkpolicies"],
            }
        ],
    }
    webhook.update(hook)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": called},
        "webhooks": [webhook],
    }


def policy(name: str = "web", ns: str = "shop", **labels: str) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"podSelector": {}},
    }


@contextlib.asynccontextmanager
async def world(**options: Any) -> AsyncIterator[tuple[Sandbox, aiohttp.ClientSession]]:
    async with Sandbox(**options) as sb, aiohttp.ClientSession(sb.url) as http:
        sb.put_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        yield sb, http


async def post(
    http: aiohttp.ClientSession, path: str, body: Obj, **kw: Any
) -> tuple[int, Obj, list[str]]:
    async with http.post(path, json=body, **kw) as r:
        return r.status, await r.json(), r.headers.getall("Warning", [])


async def register(http: aiohttp.ClientSession, config: Obj) -> None:
    status, answer, _ = await post(http, CONFIGS, config)
    assert status == 201, answer


@async_test
async def test_a_configuration_is_stored_with_the_api_defaults() -> None:
    async with world() as (sb, http):
        await register(http, configuration({"url": "https://127.0.0.1:1/v"}))
        stored = sb.get_object(
            "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "tests"
        )
        assert stored is not None
        (hook,) = stored["webhooks"]
        assert hook["failurePolicy"] == "Fail"
        assert hook["matchPolicy"] == "Equivalent"
        assert hook["timeoutSeconds"] == 10
        assert hook["namespaceSelector"] == {}
        assert hook["objectSelector"] == {}
        assert hook["rules"][0]["scope"] == "*"
        assert stored["metadata"]["generation"] == 1
        async with http.get("/apis/admissionregistration.k8s.io/v1") as r:
            (resource,) = (await r.json())["resources"]
        assert (resource["name"], resource["namespaced"]) == (
            "validatingwebhookconfigurations",
            False,
        )


@pytest.mark.parametrize(
    ("hook", "field", "message"),
    [
        ({"sideEffects": None}, "webhooks[0].sideEffects", "must specify one of None"),
        ({"sideEffects": "Some"}, "webhooks[0].sideEffects", 'Unsupported value: "Some"'),
        ({"name": "two.segments"}, "webhooks[0].name", "at least three segments"),
        ({"admissionReviewVersions": ["v2"]}, "webhooks[0].admissionReviewVersions", "v1"),
        ({"timeoutSeconds": 31}, "webhooks[0].timeoutSeconds", "between 1 and 30 seconds"),
        ({"failurePolicy": "Maybe"}, "webhooks[0].failurePolicy", "Unsupported value"),
        ({"clientConfig": {"url": "http://x/v"}}, "webhooks[0].clientConfig.url", "https"),
        (
            {"clientConfig": {"url": "https://x/v", "service": {"name": "a", "namespace": "b"}}},
            "webhooks[0].clientConfig",
            "exactly one of url or service",
        ),
        (
            {
                "rules": [
                    {
                        "operations": ["PATCH"],
                        "apiGroups": ["*"],
                        "apiVersions": ["*"],
                        "resources": ["*"],
                    }
                ]
            },
            "webhooks[0].rules[0].operations[0]",
            'Unsupported value: "PATCH"',
        ),
        (
            {"matchConditions": [{"name": "a", "expression": "true"}]},
            "webhooks[0].matchConditions",
            "cannot evaluate CEL",
        ),
    ],
)
@async_test
async def test_an_invalid_configuration_is_refused_naming_the_field(
    hook: Obj, field: str, message: str
) -> None:
    async with world() as (_, http):
        config = configuration({"url": "https://127.0.0.1:1/v"}, **hook)
        config["webhooks"][0] = {k: v for k, v in config["webhooks"][0].items() if v is not None}
        status, answer, _ = await post(http, CONFIGS, config)
        assert status == 422, answer
        (cause,) = answer["details"]["causes"]
        assert cause["field"] == field
        assert message in cause["message"]


@async_test
async def test_unknown_fields_follow_field_validation() -> None:
    async with world() as (_, http):
        config = configuration({"url": "https://127.0.0.1:1/v"}, bogus=True)
        status, answer, _ = await post(http, CONFIGS + "?fieldValidation=Strict", config)
        assert status == 400
        assert 'unknown field "webhooks[0].bogus"' in answer["message"]
        status, _, warnings = await post(http, CONFIGS, config)
        assert status == 201
        assert any("webhooks[0].bogus" in w for w in warnings)


@async_test
async def test_a_denial_is_the_real_servers_error_and_warnings_become_headers() -> None:
    ca = trustme.CA()
    async with StandIn(ca) as hook, world() as (sb, http):
        await register(http, configuration({"url": hook.url, "caBundle": bundle(ca)}))

        def deny(request: Obj) -> Obj:
            return {
                "uid": request["uid"],
                "allowed": False,
                "warnings": ["look before you leap"],
                "status": {"code": 403, "reason": "Forbidden", "message": "not today"},
            }

        hook.answer = deny
        status, answer, warnings = await post(http, NP_PATH.format(ns="shop"), policy())
        assert status == 403
        assert answer["reason"] == "Forbidden"
        assert answer["message"] == f'admission webhook "{HOOK}" denied the request: not today'
        assert warnings == ['299 - "look before you leap"']
        assert sb.get_object("networking.k8s.io/v1", "NetworkPolicy", "web", "shop") is None

        hook.answer = lambda r: {"uid": r["uid"], "allowed": False}  # no status at all
        status, answer, _ = await post(http, NP_PATH.format(ns="shop"), policy())
        assert status == 400
        assert (
            answer["message"]
            == f'admission webhook "{HOOK}" denied the request without explanation'
        )

        hook.answer = lambda r: {"uid": r["uid"], "allowed": True, "warnings": ["careful"]}
        status, _, warnings = await post(http, NP_PATH.format(ns="shop"), policy())
        assert (status, warnings) == (201, ['299 - "careful"'])
        assert sb.get_object("networking.k8s.io/v1", "NetworkPolicy", "web", "shop") is not None

        hook.answer = lambda r: {"uid": "someone-else", "allowed": True}
        status, answer, _ = await post(http, NP_PATH.format(ns="shop"), policy("other"))
        assert status == 500
        assert "expected response.uid=" in answer["message"]


@async_test
async def test_the_review_carries_the_user_the_field_manager_and_both_objects() -> None:
    ca = trustme.CA()
    async with StandIn(ca) as hook, world(users={"ci-token": "ci-deployer"}) as (sb, http):
        await register(http, configuration({"url": hook.url, "caBundle": bundle(ca)}))
        url = NP_PATH.format(ns="shop")
        status, _, _ = await post(http, url + "?fieldManager=argocd", policy())
        assert status == 201
        created = hook.requests[-1]
        assert created["operation"] == "CREATE"
        assert created["userInfo"]["username"] == "system:anonymous"
        assert created["options"] == {
            "kind": "CreateOptions",
            "apiVersion": "meta.k8s.io/v1",
            "fieldManager": "argocd",
        }
        assert created["object"]["spec"]["policyTypes"] == ["Ingress"]  # defaults applied
        assert created["oldObject"] is None
        assert (created["namespace"], created["name"]) == ("shop", "web")
        assert created["kind"] == {
            "group": "networking.k8s.io",
            "version": "v1",
            "kind": "NetworkPolicy",
        }

        changed = policy()
        changed["spec"]["policyTypes"] = ["Egress"]
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        async with http.put(url + "/web", json=changed, headers=headers) as r:
            assert r.status == 200
        updated = hook.requests[-1]
        assert updated["operation"] == "UPDATE"
        assert updated["userInfo"]["username"] == "kubernetes-admin"
        assert updated["oldObject"]["spec"]["policyTypes"] == ["Ingress"]
        assert updated["object"]["spec"]["policyTypes"] == ["Egress"]

        headers = {"Authorization": "Bearer ci-token"}
        async with http.delete(url + "/web?dryRun=All", headers=headers) as r:
            assert r.status == 200
        deleted = hook.requests[-1]
        assert deleted["operation"] == "DELETE"
        assert deleted["userInfo"]["username"] == "ci-deployer"
        assert deleted["dryRun"] is True
        assert deleted["object"] is None
        assert deleted["oldObject"]["metadata"]["name"] == "web"
        assert sb.get_object("networking.k8s.io/v1", "NetworkPolicy", "web", "shop") is not None

        impersonating = {
            "Impersonate-User": "system:serviceaccount:argocd:controller",
        }
        async with http.delete(url, headers=impersonating) as r:  # deletecollection
            assert r.status == 200
        collected = hook.requests[-1]
        assert collected["operation"] == "DELETE"
        assert collected["userInfo"] == {
            "username": "system:serviceaccount:argocd:controller",
            "groups": [
                "system:serviceaccounts",
                "system:serviceaccounts:argocd",
                "system:authenticated",
            ],
        }
        assert sb.get_object("networking.k8s.io/v1", "NetworkPolicy", "web", "shop") is None


@async_test(timeout=30)
async def test_failure_policy_decides_when_the_webhook_cannot_be_called() -> None:
    ca, stranger = trustme.CA(), trustme.CA()
    async with StandIn(ca) as hook, world() as (sb, http):
        url = NP_PATH.format(ns="shop")
        down = {"url": "https://127.0.0.1:9/validate", "caBundle": bundle(ca)}
        await register(http, configuration(down, called="down"))
        status, answer, _ = await post(http, url, policy("a"))
        assert status == 500
        assert answer["reason"] == "InternalError"
        assert answer["message"].startswith(
            f'Internal error occurred: failed calling webhook "{HOOK}": failed to call webhook: '
            'Post "https://127.0.0.1:9/validate?timeout=10s"'
        )
        async with http.delete(CONFIGS + "/down") as r:
            assert r.status == 200
        await register(http, configuration(down, called="down", failurePolicy="Ignore"))
        status, _, _ = await post(http, url, policy("a"))
        assert status == 201  # ignored
        async with http.delete(CONFIGS + "/down") as r:
            assert r.status == 200

        # A certificate from a CA the caBundle does not hold.
        await register(http, configuration({"url": hook.url, "caBundle": bundle(stranger)}))
        status, answer, _ = await post(http, url, policy("b"))
        assert status == 500
        assert "certificate" in answer["message"].lower()
        assert hook.requests == []
        async with http.delete(CONFIGS + "/tests") as r:
            assert r.status == 200

        # Too slow for timeoutSeconds.
        hook.delay = 2.0
        await register(
            http, configuration({"url": hook.url, "caBundle": bundle(ca)}, timeoutSeconds=1)
        )
        status, answer, _ = await post(http, url, policy("c"))
        assert status == 500
        assert answer["message"].endswith("context deadline exceeded")
        assert sb.get_object("networking.k8s.io/v1", "NetworkPolicy", "c", "shop") is None


@async_test
async def test_rules_and_selectors_choose_which_writes_are_sent() -> None:
    ca = trustme.CA()
    async with StandIn(ca) as hook, world() as (sb, http):
        sb.put_object(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "prod", "labels": {"env": "prod"}},
            }
        )
        client = {"url": hook.url, "caBundle": bundle(ca)}
        await register(
            http,
            configuration(
                client,
                namespaceSelector={"matchLabels": {"env": "prod"}},
                objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
                rules=[
                    {
                        "apiGroups": ["networking.k8s.io"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "DELETE"],
                        "resources": ["networkpolicies"],
                        "scope": "Namespaced",
                    }
                ],
            ),
        )
        assert hook.requests == []  # the configuration itself is never sent
        assert (await post(http, NP_PATH.format(ns="shop"), policy(ns="shop")))[0] == 201
        assert hook.requests == []  # namespaceSelector: shop lacks env=prod
        assert (await post(http, NP_PATH.format(ns="prod"), policy(ns="prod", skip="y")))[0] == 201
        assert hook.requests == []  # objectSelector
        assert (await post(http, NP_PATH.format(ns="prod"), policy("a", ns="prod")))[0] == 201
        assert hook.operations() == ["CREATE"]
        changed = policy("a", ns="prod")
        changed["spec"]["policyTypes"] = ["Egress"]
        async with http.put(NP_PATH.format(ns="prod") + "/a", json=changed) as r:
            assert r.status == 200
        assert hook.operations() == ["CREATE"]  # UPDATE is not in the rule
        async with http.delete(NP_PATH.format(ns="prod") + "/a") as r:
            assert r.status == 200
        assert hook.operations() == ["CREATE", "DELETE"]
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        assert (await post(http, "/api/v1/namespaces/prod/configmaps", config_map))[0] == 201
        assert hook.operations() == ["CREATE", "DELETE"]  # another resource


@async_test
async def test_a_service_is_reached_through_the_mapping_and_its_dns_name_checked() -> None:
    ca = trustme.CA()
    async with StandIn(ca, SERVICE_HOST) as hook, world() as (sb, http):
        service = {"name": "hook", "namespace": "tests", "path": "/validate", "port": 8443}
        await register(http, configuration({"service": service, "caBundle": bundle(ca)}))
        status, answer, _ = await post(http, NP_PATH.format(ns="shop"), policy("a"))
        assert status == 500
        assert 'no endpoints available for service "hook"' in answer["message"]
        sb.webhook_services[f"{SERVICE_HOST}:8443"] = f"127.0.0.1:{hook.port}"
        status, answer, _ = await post(http, NP_PATH.format(ns="shop"), policy("a"))
        assert status == 201, answer
        assert hook.operations() == ["CREATE"]
    # A certificate for another name fails the host name check.
    async with StandIn(ca, "elsewhere.tests.svc") as hook, world() as (sb, http):
        sb.webhook_services[f"{SERVICE_HOST}:443"] = f"127.0.0.1:{hook.port}"
        service = {"name": "hook", "namespace": "tests", "path": "/validate"}
        await register(http, configuration({"service": service, "caBundle": bundle(ca)}))
        status, answer, _ = await post(http, NP_PATH.format(ns="shop"), policy("a"))
        assert status == 500
        assert f'Post "https://{SERVICE_HOST}:443/validate?timeout=10s"' in answer["message"]
        assert hook.requests == []


@pytest.mark.kubectl
@pytest.mark.skipif(kubectl_path() is None, reason="kubectl is not on PATH")
@async_test(timeout=60)
async def test_kubectl_applies_lists_and_explains_webhook_configurations() -> None:
    ca = trustme.CA()
    async with StandIn(ca) as hook, world() as (sb, _):
        home = Path(tempfile.mkdtemp(prefix="driftwatch-kubectl-"))
        kubectl = Kubectl(sb.kubeconfig_path(home), home)
        manifest = home / "config.yaml"
        manifest.write_text(
            yaml.safe_dump(configuration({"url": hook.url, "caBundle": bundle(ca)}))
        )

        async def run(*args: str) -> Any:
            return await asyncio.to_thread(kubectl.run, *args, check=False)

        applied = await run("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        assert (
            "validatingwebhookconfiguration.admissionregistration.k8s.io/tests created"
            in applied.stdout
        )
        listed = await run("get", "validatingwebhookconfigurations")
        assert listed.stdout.split()[:5] == ["NAME", "WEBHOOKS", "AGE", "tests", "1"]
        kind = ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "tests")
        before = sb.get_object(*kind)
        assert before is not None
        again = await run("apply", "-f", str(manifest))
        assert again.returncode == 0, again.stderr
        # "configured", as on a real server (the defaulted scope sits in the atomic rules
        # list, so kubectl re-sends it), but the merge changes nothing.
        after = sb.get_object(*kind)
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        explained = await run("explain", "validatingwebhookconfiguration.webhooks.failurePolicy")
        assert explained.returncode == 0, explained.stderr
        hook.answer = lambda r: {
            "uid": r["uid"],
            "allowed": False,
            "status": {"code": 403, "reason": "Forbidden", "message": "frozen"},
        }
        np = home / "np.yaml"
        np.write_text(json.dumps(policy()))
        refused = await run("apply", "-f", str(np))
        assert refused.returncode != 0
        assert "Error from server (Forbidden)" in refused.stderr
        assert f'admission webhook "{HOOK}" denied the request: frozen' in refused.stderr
