"""The admission webhook end to end, with the REAL kubectl: the daemon (desired state from
the examples) serves the webhook over TLS, the sandbox API server calls it through the
shipped ValidatingWebhookConfiguration (``config/kubernetes/validatingwebhookconfiguration.yaml``,
its Service mapped to the daemon's loopback port, its ``caBundle`` this test's CA), and
kubectl writes the way people do:

1. ``kubectl edit`` opening a protected policy to the world is refused (``enforce: deny``),
   and kubectl's error names the policy's source in Git and the risk;
2. with ``enforce: warn`` the same change goes through and kubectl prints the warning;
3. the identity that applies Git (its field manager, or its service account via ``--as``)
   passes even when it diverges, and a human re-applying Git (a revert) passes too;
4. an unprotected namespace passes, and one the webhook's namespaceSelector leaves out is
   never even sent.

TLS certificates are made in the test (trustme); no private key is committed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import RecordingNotifier, start_until_ready
from driftwatch.drift import EventKind
from driftwatch.sandbox import Sandbox
from driftwatch.sandbox.kubectl import Kubectl, kubectl_path
from tests.aio import async_test
from tests.test_daemon import EXAMPLES, FAST, NP, settings_for

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(kubectl_path() is None, reason="kubectl is not on PATH"),
]

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "kubernetes" / "validatingwebhookconfiguration.yaml"
SERVICE_HOST = "driftwatch-admission.driftwatch.svc"
WEBHOOK = "networkpolicies.driftwatch.io"
NAME = "frontend-allow-from-ingress"
ARGOCD = "system:serviceaccount:argocd:argocd-application-controller"
OPEN_TO_WORLD = [
    {
        "op": "add",
        "path": "/spec/ingress/-",
        "value": {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
    }
]

EDITOR = """#!{python}
# kubectl edit's editor: add an ingress rule from anywhere to the policy being edited.
import sys
import yaml

path = sys.argv[-1]
with open(path) as handle:
    doc = yaml.safe_load(handle)
doc["spec"]["ingress"].append({{"from": [{{"ipBlock": {{"cidr": "0.0.0.0/0"}}}}]}})
with open(path, "w") as handle:
    yaml.safe_dump(doc, handle)
"""


@dataclass
class World:
    sandbox: Sandbox
    daemon: Daemon
    kubectl: Kubectl
    recorder: RecordingNotifier
    tmp: Path

    async def run(self, *args: str, **env: str) -> Any:
        """kubectl in a thread (the sandbox and the daemon share this test's loop)."""
        return await asyncio.to_thread(
            self.kubectl.run, *args, check=False, env=self.kubectl.env(**env)
        )

    def source(self, namespace: str, name: str) -> str:
        lookup = self.daemon.admission_backend().desired()
        assert lookup is not None
        policy = lookup(namespace, name)
        assert policy is not None
        assert policy.source is not None
        return str(policy.source)  # path:line, and @commit for a committed file

    def stored(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.sandbox.get_object(*NP, name, namespace)


def _certificates(tmp: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    leaf = ca.issue_cert(SERVICE_HOST, "127.0.0.1")
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert), append=i > 0)
    leaf.private_key_pem.write_to_path(str(key))
    return ca, cert, key


def _webhook_configuration(ca: trustme.CA) -> dict[str, Any]:
    """The shipped ValidatingWebhookConfiguration, with ``ca`` as its caBundle."""
    docs = {d["kind"]: d for d in yaml.safe_load_all(SHIPPED.read_text()) if d}
    config: dict[str, Any] = docs["ValidatingWebhookConfiguration"]
    bundle = base64.b64encode(ca.cert_pem.bytes()).decode()
    config["webhooks"][0]["clientConfig"]["caBundle"] = bundle
    return config


@contextlib.asynccontextmanager
async def protected(tmp: Path, *, enforce: str) -> AsyncIterator[World]:
    """The examples in a sandbox and in Git, the daemon's webhook registered: ``shop`` and
    ``payments`` protected; Argo CD's service account and field manager apply Git."""
    ca, cert, key = _certificates(tmp)
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        admission = {
            "listen": "127.0.0.1:0",
            "cert_file": str(cert),
            "key_file": str(key),
            "enforce": enforce,
            "namespaces": ["shop", "payments"],
            "git_identities": {
                "service_accounts": ["argocd:argocd-application-controller"],
                "field_managers": ["argocd-controller"],
            },
        }
        kubeconfig = sandbox.kubeconfig_path(tmp)
        settings = settings_for(kubeconfig, {"path": str(EXAMPLES)}, admission=admission)
        recorder = RecordingNotifier()
        daemon = Daemon(settings, notifiers=[recorder], tuning=FAST)
        task = await start_until_ready(daemon, timeout=20)
        try:
            assert daemon.admission is not None
            await asyncio.wait_for(daemon.admission.listening.wait(), 5)
            sandbox.webhook_services[f"{SERVICE_HOST}:443"] = f"127.0.0.1:{daemon.admission.port}"
            world = World(sandbox, daemon, Kubectl(kubeconfig, tmp / "home"), recorder, tmp)
            manifest = tmp / "webhook.yaml"
            manifest.write_text(yaml.safe_dump(_webhook_configuration(ca)))
            done = await world.run("apply", "-f", str(manifest))
            assert done.returncode == 0, done.stderr
            assert "validatingwebhookconfiguration" in done.stdout
            yield world
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)
        assert not daemon.admission.listening.is_set()  # the webhook stops with the daemon


def _editor(tmp: Path) -> Path:
    script = tmp / "open-to-world"
    script.write_text(EDITOR.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _manifest(tmp: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(doc))
    return path


def _git_version(name: str = NAME) -> dict[str, Any]:
    for doc in yaml.safe_load_all((EXAMPLES / "shop" / "frontend.yaml").read_text()):
        if doc["metadata"]["name"] == name:
            return dict(doc)
    raise AssertionError(name)


def _open_to_world() -> dict[str, Any]:
    doc = _git_version()
    doc["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    return doc


@async_test(timeout=120)
async def test_deny_refuses_a_kubectl_edit_naming_the_git_source_and_the_risk(
    tmp_path: Path,
) -> None:
    async with protected(tmp_path, enforce="deny") as world:
        before = world.stored("shop", NAME)
        editor = _editor(tmp_path)
        edit = await world.run("edit", "networkpolicy", NAME, "-n", "shop", KUBE_EDITOR=str(editor))
        assert edit.returncode != 0
        refused = f'admission webhook "{WEBHOOK}" denied the request: this change to NetworkPolicy'
        assert refused in edit.stderr, edit.stderr
        assert world.source("shop", NAME) in edit.stderr  # path:line@commit
        assert "severity critical" in edit.stderr
        assert "from every IPv4 address on the internet" in edit.stderr
        assert world.stored("shop", NAME) == before  # nothing was written

        # kubectl apply and a deletion are refused the same way.
        applied = await world.run(
            "apply", "-f", str(_manifest(tmp_path, "w.yaml", _open_to_world()))
        )
        assert applied.returncode != 0
        assert "Error from server (Forbidden)" in applied.stderr
        assert world.source("shop", NAME) in applied.stderr
        deleted = await world.run("delete", "networkpolicy", "default-deny", "-n", "payments")
        assert deleted.returncode != 0
        assert "deleting NetworkPolicy payments/default-deny" in deleted.stderr
        assert world.source("payments", "default-deny") in deleted.stderr
        assert world.stored("payments", "default-deny") is not None
        # A dry run is judged the same and stores nothing either way.
        dry = await world.run(
            "apply", "--dry-run=server", "-f", str(_manifest(tmp_path, "w.yaml", _open_to_world()))
        )
        assert dry.returncode != 0
        assert f'admission webhook "{WEBHOOK}" denied the request' in dry.stderr
        assert world.recorder.events == []  # the cluster never drifted


@async_test(timeout=120)
async def test_warn_allows_the_change_and_kubectl_prints_the_warning(tmp_path: Path) -> None:
    async with protected(tmp_path, enforce="warn") as world:
        patched = await world.run(
            "patch", "networkpolicy", NAME, "-n", "shop", "--type=json",
            "-p", json.dumps(OPEN_TO_WORLD),
        )  # fmt: skip
        assert patched.returncode == 0, patched.stderr
        assert "patched" in patched.stdout
        warning = next(
            line for line in patched.stderr.splitlines() if line.startswith("Warning: driftwatch:")
        )
        assert f"NetworkPolicy shop/{NAME} makes it differ" in warning
        assert world.source("shop", NAME) in warning
        assert "severity critical" in warning
        stored = world.stored("shop", NAME)
        assert stored is not None
        assert len(stored["spec"]["ingress"]) == 2  # allowed: the cluster drifted
        opened = await world.recorder.wait_for(EventKind.OPENED, NAME)
        assert str(opened.drift.severity) == "critical"


@async_test(timeout=120)
async def test_the_git_identity_passes_even_when_it_diverges(tmp_path: Path) -> None:
    async with protected(tmp_path, enforce="deny") as world:
        diverging = _manifest(tmp_path, "argo.yaml", _open_to_world())
        # Argo CD applying a commit driftwatch has not loaded yet: its field manager ...
        applied = await world.run(
            "apply", "--field-manager=argocd-controller", "-f", str(diverging)
        )
        assert applied.returncode == 0, applied.stderr
        assert "Warning" not in applied.stderr
        stored = world.stored("shop", NAME)
        assert stored is not None
        assert len(stored["spec"]["ingress"]) == 2
        # ... or its service account (kubectl --as sends Impersonate-User).
        deleted = await world.run(
            "delete", "networkpolicy", "default-deny", "-n", "payments", f"--as={ARGOCD}"
        )
        assert deleted.returncode == 0, deleted.stderr
        assert world.stored("payments", "default-deny") is None
        users = [r["request"]["userInfo"]["username"] for r in world.sandbox.admission.reviews]
        assert ARGOCD in users
        managers = [
            r["request"]["options"].get("fieldManager") for r in world.sandbox.admission.reviews
        ]
        assert "argocd-controller" in managers
        # A human putting Git's version back (a revert) is always allowed.
        git = _manifest(tmp_path, "git.yaml", _git_version())
        reverted = await world.run("apply", "-f", str(git))
        assert reverted.returncode == 0, reverted.stderr
        stored = world.stored("shop", NAME)
        assert stored is not None
        assert len(stored["spec"]["ingress"]) == 1


@async_test(timeout=120)
async def test_unprotected_namespaces_pass(tmp_path: Path) -> None:
    async with protected(tmp_path, enforce="deny") as world:
        sent = len(world.sandbox.admission.reviews)
        deleted = await world.run(
            "delete", "networkpolicy", "prometheus-scrape", "-n", "monitoring"
        )
        assert deleted.returncode == 0, deleted.stderr  # sent to driftwatch, not protected
        assert len(world.sandbox.admission.reviews) == sent + 1
        rogue = _open_to_world()
        rogue["metadata"].update(name="rogue", namespace="kube-system")
        created = await world.run("apply", "-f", str(_manifest(tmp_path, "r.yaml", rogue)))
        assert created.returncode == 0, created.stderr
        # kube-system is outside the shipped namespaceSelector: never sent at all.
        assert len(world.sandbox.admission.reviews) == sent + 1
