"""The sandbox API server driven by the REAL kubectl: what users of the demo will type.

Each test works in its own namespace of one sandbox (started once for the module in a
background thread) and checks the stored object and its managedFields after every write.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from driftwatch.policy import live_origin
from driftwatch.sandbox import SandboxThread
from driftwatch.sandbox.kubectl import Kubectl, KubectlError, kubectl_path

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(kubectl_path() is None, reason="kubectl is not on PATH"),
]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples" / "policies"
NP = ("networking.k8s.io/v1", "NetworkPolicy")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def policy(name: str, namespace: str, port: int = 8080, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {"app": name}},
        "ingress": [
            {
                "from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                "ports": [{"port": port}],
            }
        ],
    }
    spec.update(extra)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as st:
        yield st


@pytest.fixture(scope="module")
def kubectl(sandbox: SandboxThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("kubectl-home")
    return Kubectl(sandbox.kubeconfig_path(home), home)


@pytest.fixture
def ns(sandbox: SandboxThread, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.removeprefix("test_").lower())
    name = name.strip("-")[:50]
    sandbox.put_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def managers(obj: dict[str, Any]) -> dict[str, set[str]]:
    """manager -> top-level paths it owns (``spec.ingress``, ``metadata.labels``...)."""
    owned: dict[str, set[str]] = {}
    for entry in obj["metadata"].get("managedFields", []):
        paths = owned.setdefault(entry["manager"], set())
        for top, sub in entry["fieldsV1"].items():
            for field in sub:
                if field != ".":
                    paths.add(f"{top[2:]}.{field[2:]}")
    return owned


def latest_manager(obj: dict[str, Any]) -> str | None:
    """The last writer as driftwatch reads it (times are to the second; ties go to the entry
    listed last, and the server lists same-second entries by manager name)."""
    origin = live_origin(obj["metadata"])
    return None if origin is None else origin.manager


def write(tmp_path: Path, obj: dict[str, Any], name: str = "np.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(obj), encoding="utf-8")
    return path


def stored(sandbox: SandboxThread, name: str, namespace: str) -> dict[str, Any]:
    obj = sandbox.get_object(*NP, name, namespace)
    assert obj is not None, f"{namespace}/{name} is not stored"
    return obj


def test_apply_creates_then_updates(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    manifest = write(tmp_path, policy("web", ns))
    out = kubectl.run("apply", "-f", str(manifest)).stdout
    assert "networkpolicy.networking.k8s.io/web created" in out
    created = stored(sandbox, "web", ns)
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["policyTypes"] == ["Ingress"]  # the API default
    assert created["spec"]["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    applied = json.loads(created["metadata"]["annotations"][LAST_APPLIED])
    assert applied["spec"]["ingress"][0]["ports"] == [{"port": 8080}]
    assert set(managers(created)) == {"kubectl-client-side-apply"}
    assert created["metadata"]["managedFields"][0]["operation"] == "Update"

    write(tmp_path, policy("web", ns, port=9090))
    out = kubectl.run("apply", "-f", str(manifest)).stdout
    assert "networkpolicy.networking.k8s.io/web configured" in out
    updated = stored(sandbox, "web", ns)
    assert updated["spec"]["ingress"][0]["ports"] == [{"port": 9090, "protocol": "TCP"}]
    assert updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert latest_manager(updated) == "kubectl-client-side-apply"
    assert "spec.ingress" in managers(updated)["kubectl-client-side-apply"]

    # Unchanged: kubectl still patches the atomic ingress list (the live one has the
    # defaulted protocol), the server sees a no-op and keeps the resourceVersion.
    kubectl.run("apply", "-f", str(manifest))
    again = stored(sandbox, "web", ns)
    assert again["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]


def test_get_all_namespaces_json_and_one_as_yaml(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    kubectl.run("apply", "-f", str(write(tmp_path, policy("api", ns))))
    listing = kubectl.json("get", "networkpolicies", "-A")
    assert listing["kind"] == "List"
    keys = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listing["items"]}
    assert (ns, "api") in keys
    assert ("shop", "default-deny") in keys  # seeded from config/examples
    assert all(i["kind"] == "NetworkPolicy" for i in listing["items"])

    text = kubectl.run("get", "netpol", "-n", ns, "api", "-o", "yaml").stdout
    obj = yaml.safe_load(text)
    assert obj["metadata"]["name"] == "api"
    assert obj["spec"] == stored(sandbox, "api", ns)["spec"]
    assert "managedFields" not in obj["metadata"]  # kubectl hides them by default

    table = kubectl.run("get", "netpol", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "POD-SELECTOR", "AGE"]
    assert table[1].split()[:2] == ["api", "app=api"]


def test_get_watch_streams_changes(sandbox: SandboxThread, kubectl: Kubectl, ns: str) -> None:
    sandbox.put_object(policy("first", ns))
    watcher = kubectl.popen("get", "netpol", "-n", ns, "-w", "--output-watch-events")
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline().split()
        assert header == ["EVENT", "NAME", "POD-SELECTOR", "AGE"]
        assert watcher.stdout.readline().split()[:2] == ["ADDED", "first"]
        sandbox.run(sandbox.sandbox.wait_for_watchers(1, resource="networkpolicies"))
        sandbox.put_object(policy("second", ns))
        assert watcher.stdout.readline().split()[:2] == ["ADDED", "second"]
        sandbox.delete_object(*NP, "first", ns)
        assert watcher.stdout.readline().split()[:2] == ["DELETED", "first"]
    finally:
        watcher.kill()
        watcher.communicate()


def test_edit_through_editor_script(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    kubectl.run("apply", "-f", str(write(tmp_path, policy("web", ns))))
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys\n"
        "path = sys.argv[1]\n"
        "text = open(path).read().replace('port: 8080', 'port: 8443')\n"
        "open(path, 'w').write(text)\n",
        encoding="utf-8",
    )
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(editor))}"
    env = kubectl.env(KUBE_EDITOR=command)
    out = kubectl.run("edit", "netpol", "-n", ns, "web", env=env).stdout
    assert "networkpolicy.networking.k8s.io/web edited" in out
    obj = stored(sandbox, "web", ns)
    assert obj["spec"]["ingress"][0]["ports"] == [{"port": 8443, "protocol": "TCP"}]
    assert latest_manager(obj) == "kubectl-edit"
    owned = managers(obj)
    assert owned["kubectl-edit"] == {"spec.ingress"}
    assert "spec.ingress" not in owned["kubectl-client-side-apply"]
    assert obj["metadata"]["generation"] == 2


class PatchCase(NamedTuple):
    type: str
    patch: str
    path: str  # where the change shows, and what kubectl-patch then owns
    key: str | None
    expected: Any


PATCH_CASES = [
    PatchCase("merge", '{"metadata":{"labels":{"tier":"db"}}}', "metadata.labels", "tier", "db"),
    PatchCase(
        "json",
        '[{"op":"replace","path":"/spec/podSelector/matchLabels/app","value":"postgres"}]',
        "spec.podSelector",
        "matchLabels",
        {"app": "postgres"},
    ),
    PatchCase(
        "strategic",
        '{"spec":{"policyTypes":["Ingress","Egress"]}}',
        "spec.policyTypes",
        None,
        ["Ingress", "Egress"],
    ),
]


@pytest.mark.parametrize("case", PATCH_CASES, ids=[c.type for c in PATCH_CASES])
def test_patch_types(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path, case: PatchCase
) -> None:
    patch_type, patch = case.type, case.patch
    kubectl.run("apply", "-f", str(write(tmp_path, policy("db", ns))))
    before = stored(sandbox, "db", ns)
    out = kubectl.run("patch", "netpol", "-n", ns, "db", "--type", patch_type, "-p", patch)
    assert "networkpolicy.networking.k8s.io/db patched" in out.stdout
    obj = stored(sandbox, "db", ns)
    node: Any = obj
    for part in case.path.split("."):
        node = node[part]
    assert (node[case.key] if case.key else node) == case.expected
    assert latest_manager(obj) == "kubectl-patch"
    assert case.path in managers(obj)["kubectl-patch"]
    assert int(obj["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    unchanged = kubectl.run("patch", "netpol", "-n", ns, "db", "--type", patch_type, "-p", patch)
    assert "(no change)" in unchanged.stdout
    assert (
        stored(sandbox, "db", ns)["metadata"]["resourceVersion"]
        == obj["metadata"]["resourceVersion"]
    )


def test_strategic_patch_merges_lists_with_merge_keys(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": ns},
        "spec": {"containers": [{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "x:1"}]},
    }
    sandbox.put_object(pod)
    patch = '{"spec":{"containers":[{"name":"b","image":"x:2"}]}}'
    kubectl.run("patch", "pod", "-n", ns, "app", "-p", patch)
    obj = sandbox.get_object("v1", "Pod", "app", ns)
    assert obj is not None
    images = [(c["name"], c["image"]) for c in obj["spec"]["containers"]]
    assert images == [("a", "nginx:1"), ("b", "x:2")]


def test_delete(sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("apply", "-f", str(write(tmp_path, policy("gone", ns))))
    out = kubectl.run("delete", "netpol", "-n", ns, "gone").stdout
    assert 'networkpolicy.networking.k8s.io "gone" deleted' in out
    assert sandbox.get_object(*NP, "gone", ns) is None
    last = [c for c in sandbox.changes() if c.namespace == ns and c.name == "gone"][-1]
    assert last.type == "DELETED"
    missing = kubectl.run("get", "netpol", "-n", ns, "gone", check=False)
    assert missing.returncode != 0
    assert 'networkpolicies.networking.k8s.io "gone" not found' in missing.stderr


def test_invalid_policy_is_rejected_naming_the_field(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    bad = policy("bad", ns)
    bad["spec"]["ingress"][0]["from"][0] = {"ipBlock": {"cidr": "10.0.0.0/33"}}
    with pytest.raises(KubectlError) as caught:
        kubectl.run("apply", "-f", str(write(tmp_path, bad)))
    assert 'The NetworkPolicy "bad" is invalid' in caught.value.stderr
    assert "spec.ingress[0].from[0].ipBlock.cidr" in caught.value.stderr
    assert sandbox.get_object(*NP, "bad", ns) is None

    typo = policy("typo", ns)
    typo["spec"]["podSelectr"] = typo["spec"].pop("podSelector")
    with pytest.raises(KubectlError) as caught:
        kubectl.run("apply", "-f", str(write(tmp_path, typo)))
    assert 'strict decoding error: unknown field "spec.podSelectr"' in caught.value.stderr


def test_server_side_apply_and_conflicts(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    manifest = write(tmp_path, policy("ssa", ns))
    kubectl.run("apply", "--server-side", "-f", str(manifest))
    obj = stored(sandbox, "ssa", ns)
    entry = obj["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply")
    kubectl.run(
        "patch",
        "netpol",
        "-n",
        ns,
        "ssa",
        "--type",
        "merge",
        "-p",
        '{"spec":{"podSelector":{"matchLabels":{"app":"other"}}}}',
    )
    write(tmp_path, policy("ssa", ns, port=81))
    conflict = kubectl.run("apply", "--server-side", "-f", str(manifest), check=False)
    assert conflict.returncode != 0
    assert 'conflict with "kubectl-patch"' in conflict.stderr
    assert ".spec.podSelector" in conflict.stderr
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    forced = stored(sandbox, "ssa", ns)
    assert forced["spec"]["podSelector"] == {"matchLabels": {"app": "ssa"}}
    assert "kubectl-patch" not in managers(forced)


def test_diff_is_a_dry_run(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    manifest = write(tmp_path, policy("dry", ns))
    kubectl.run("apply", "-f", str(manifest))
    before = stored(sandbox, "dry", ns)
    write(tmp_path, policy("dry", ns, port=9999))
    result = kubectl.run("diff", "-f", str(manifest), check=False)
    assert result.returncode == 1, result.stderr  # 1: differences found
    assert "+    - port: 9999" in result.stdout
    assert (
        stored(sandbox, "dry", ns)["metadata"]["resourceVersion"]
        == before["metadata"]["resourceVersion"]
    )


def test_create_and_replace_with_a_stale_version(
    sandbox: SandboxThread, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    kubectl.run("create", "-f", str(write(tmp_path, policy("rep", ns))))
    created = stored(sandbox, "rep", ns)
    assert set(managers(created)) == {"kubectl-create"}
    assert LAST_APPLIED not in created["metadata"].get("annotations", {})
    edited = {**created, "spec": {**created["spec"], "policyTypes": ["Ingress", "Egress"]}}
    manifest = write(tmp_path, edited, "replace.yaml")
    assert "replaced" in kubectl.run("replace", "-f", str(manifest)).stdout
    replaced = stored(sandbox, "rep", ns)
    assert managers(replaced)["kubectl-replace"] == {"spec.policyTypes"}
    stale = kubectl.run("replace", "-f", str(manifest), check=False)  # resourceVersion is old
    assert stale.returncode != 0
    assert "Error from server (Conflict)" in stale.stderr
    assert "the object has been modified" in stale.stderr
