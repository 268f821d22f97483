"""Connecting to a cluster (kubeconfig, contexts, ``$KUBECONFIG``, in-cluster, a token
override) and reading its NetworkPolicies once, against the real sandbox over loopback.

Every error is one line naming the file, context or server, and never shows a token.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Any, ParamSpec

import certifi
import pytest

from driftwatch.live import (
    LiveAccessError,
    LiveConfigError,
    LiveError,
    LiveInvalidError,
    LiveUnavailableError,
    WatchOptions,
    connect,
    load_cluster,
    load_snapshot,
    read_cluster,
)
from driftwatch.policy import parse_policy
from driftwatch.sandbox import DEFAULT_TOKEN, Sandbox, SandboxThread
from driftwatch.sandbox.kubeconfig import kubeconfig, write_kubeconfig
from tests.aio import async_test

P = ParamSpec("P")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_LIVE = ROOT / "config" / "examples" / "live"
NP = ("networking.k8s.io/v1", "NetworkPolicy")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def np_body(name: str, ns: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": name}}},
    }


def two_contexts(path: Path, good: str, bad: str, token: str = DEFAULT_TOKEN) -> Path:
    """A kubeconfig whose current context ``broken`` points at ``bad``; ``sandbox`` at ``good``."""
    doc = kubeconfig(good, token, name="sandbox")
    other = kubeconfig(bad, "another-secret-token", name="broken")
    for section in ("clusters", "users", "contexts"):
        doc[section] += other[section]
    doc["current-context"] = "broken"
    return write_kubeconfig(path, doc)


def assert_one_line(error: BaseException, *fragments: str) -> str:
    message = str(error)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    for secret in (DEFAULT_TOKEN, "another-secret-token", "s3cret-token", "wrong-token"):
        assert secret not in message
    return message


# --- connect ------------------------------------------------------------------------------


@async_test
async def test_connect_with_a_kubeconfig_reads_the_cluster() -> None:
    async with Sandbox(seed=[EXAMPLE_LIVE]) as sb:
        api = await connect(sb.kubeconfig_path())
        async with api:
            assert api.configuration.host == sb.url
            policies = await read_cluster(api, options=WatchOptions(page_size=4))
        server = {
            (o["metadata"]["namespace"], o["metadata"]["name"]): parse_policy(o)
            for o in sb.list_objects(*NP)
        }
        assert policies == server
        assert policies == load_snapshot(EXAMPLE_LIVE)  # the same content as the file
        origins = {p.origin.manager for p in policies.values() if p.origin is not None}
        assert origins == {"kubectl-client-side-apply"}


@async_test
async def test_contexts_and_the_kubeconfig_variable(tmp_path: Path) -> None:
    async with Sandbox() as sb:
        sb.put_object(np_body("web"))
        bad = f"http://127.0.0.1:{closed_port()}"
        config = two_contexts(tmp_path / "config", sb.url, bad)
        env = {"KUBECONFIG": f"{tmp_path / 'absent'}:{config}", "HOME": str(tmp_path)}

        api = await connect(context="sandbox", environ=env)
        async with api:
            assert set(await read_cluster(api)) == {("shop", "web")}

        api = await connect(config)  # the current context: the broken one
        async with api:
            assert api.configuration.host == bad
            with pytest.raises(LiveUnavailableError) as caught:
                await read_cluster(api)
        assert_one_line(caught.value, f"cannot reach the Kubernetes API server at {bad}")
        assert caught.value.reason == "unreachable"

        with pytest.raises(LiveConfigError) as unknown:
            await connect(config, context="prod")
        assert_one_line(unknown.value, str(config), "'prod'", "contexts: sandbox, broken")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(None, ["no such file"], id="missing"),
        pytest.param("clusters: [\n", [":2:", "not valid YAML"], id="bad-yaml"),
        pytest.param("- a\n- b\n", ["not a kubeconfig"], id="not-a-mapping"),
        pytest.param("apiVersion: v1\n", ["no current-context"], id="no-context"),
        pytest.param(
            "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\n"
            "users: [{name: u, user: {token: s3cret-token}}]\nclusters: []\n",
            ["context 'c'", "x"],
            id="no-cluster",
        ),
    ],
)
def test_unusable_kubeconfigs_are_one_line_errors(
    tmp_path: Path, text: str | None, fragments: list[str]
) -> None:
    path = tmp_path / "kubeconfig"
    if text is not None:
        path.write_text(text)
    with pytest.raises(LiveConfigError) as caught:
        asyncio.run(connect(path))
    assert_one_line(caught.value, f"kubeconfig {path}", *fragments)


@async_test
async def test_a_token_override_replaces_the_kubeconfig_credentials() -> None:
    async with Sandbox(require_auth=True, token="s3cret-token") as sb:
        sb.put_object(np_body("web"))
        path = write_kubeconfig(
            Path(sb.kubeconfig_path()).with_name("wrong"), kubeconfig(sb.url, "wrong-token")
        )
        api = await connect(path)
        async with api:
            with pytest.raises(LiveAccessError) as caught:
                await read_cluster(api)
        assert_one_line(
            caught.value,
            "401",
            sb.url,
            "driftwatch needs list and watch on networkpolicies.networking.k8s.io cluster-wide",
        )
        api = await connect(path, token="s3cret-token")
        async with api:
            assert set(await read_cluster(api)) == {("shop", "web")}
        with pytest.raises(LiveConfigError, match="empty"):
            await connect(path, token="  ")


@async_test
async def test_in_cluster_configuration_from_the_service_account(tmp_path: Path) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("s3cret-token")
    shutil.copy(certifi.where(), account / "ca.crt")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    api = await connect(environ=env, service_account_dir=account)
    async with api:
        assert api.configuration.host == "https://10.0.0.1:443"
        assert api.configuration.api_key["BearerToken"] == "Bearer s3cret-token"
    api = await connect(environ=env, service_account_dir=account, token="other")
    async with api:
        assert api.configuration.api_key["BearerToken"] == "Bearer other"
        assert api.configuration.refresh_api_key_hook is None

    (account / "token").unlink()
    with pytest.raises(LiveConfigError) as caught:
        await connect(environ=env, service_account_dir=account)
    assert_one_line(caught.value, "in-cluster configuration", str(account))
    # An explicit kubeconfig wins over the in-cluster configuration.
    with pytest.raises(LiveConfigError, match="no such file"):
        await connect(tmp_path / "nope", environ=env)


# --- read_cluster and load_cluster ----------------------------------------------------------


def test_load_cluster_reads_all_or_some_namespaces(tmp_path: Path) -> None:
    with SandboxThread(seed=[EXAMPLE_LIVE]) as st:
        path = st.kubeconfig_path(tmp_path)
        everything = load_cluster(path, None)
        assert everything == load_snapshot(EXAMPLE_LIVE)
        some = load_cluster(path, "driftwatch-sandbox", namespaces=["shop", "payments"])
        assert some == {k: v for k, v in everything.items() if k[0] in ("shop", "payments")}
        assert some
        assert set(some) < set(everything)


def test_load_cluster_errors_are_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    gone = write_kubeconfig(tmp_path / "gone", kubeconfig(url, DEFAULT_TOKEN))
    with pytest.raises(LiveError) as unreachable:
        load_cluster(gone, None)
    assert_one_line(unreachable.value, f"cannot reach the Kubernetes API server at {url}")

    with pytest.raises(LiveConfigError) as missing:
        load_cluster(tmp_path / "nope", None)
    assert_one_line(missing.value, str(tmp_path / "nope"), "no such file")

    with SandboxThread(require_auth=True, token="s3cret-token") as st:
        wrong = write_kubeconfig(tmp_path / "wrong", kubeconfig(st.url, "wrong-token"))
        with pytest.raises(LiveAccessError) as denied:
            load_cluster(wrong, None, namespaces=["shop"])
        assert_one_line(denied.value, "401", "in namespaces shop")

        st.call(st.sandbox.faults.fail, status=403, count=1)
        right = st.kubeconfig_path(tmp_path)
        with pytest.raises(LiveAccessError) as forbidden:
            load_cluster(right, None)
        assert_one_line(forbidden.value, "403", "forbids listing NetworkPolicies cluster-wide")

        st.call(st.sandbox.faults.fail, status=500, count=1)
        with pytest.raises(LiveUnavailableError) as failing:
            load_cluster(right, None)
        assert_one_line(failing.value, "500", st.url)


@async_test
async def test_an_invalid_object_on_the_server_is_a_one_line_error() -> None:
    async with Sandbox() as sb:
        body = np_body("broken")
        body["spec"]["ingress"] = [{"from": [{"ipBlock": {"cidr": "300.1.2.3/8"}}]}]
        body["metadata"]["uid"] = "u1"
        sb.store.commit("ADDED", sb.resource(*NP), body, None, "raw")
        api = await connect(sb.kubeconfig_path())
        async with api:
            with pytest.raises(LiveInvalidError) as caught:
                await read_cluster(api)
        assert_one_line(caught.value, sb.url, "NetworkPolicy shop/broken", "ipBlock.cidr")
