"""`driftwatch check` end to end, as a user runs it: the README's contract.

Flags, the JSON shape, exit statuses 0/1/2, the text report, and errors as exactly one
line naming file:line (never a traceback). A few tests run the real command in a fresh
interpreter (``python -m driftwatch``); the rest call ``driftwatch.cli.main`` in-process.
"""

from __future__ import annotations

import functools
import json
import os
import pty
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import benchmarks.generate
from benchmarks.generate import generate
from driftwatch.cli import _shards, main
from driftwatch.cli import check as check_command
from driftwatch.cli.output import report_json
from driftwatch.desired import DesiredStateError, load_path
from driftwatch.desired._collect import Collector
from driftwatch.drift import compare_all
from driftwatch.live import load_snapshot
from driftwatch.rules import RuleEngine

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples"
EXAMPLE_ARGS = (
    "--desired",
    str(EXAMPLES / "policies"),
    "--live",
    str(EXAMPLES / "live"),
    "--config",
    str(EXAMPLES / "driftwatch.yaml"),
)
SEVERITIES = ("info", "low", "medium", "high", "critical")
ERROR_PREFIX = "driftwatch check: error: "
ANSI = "\x1b["

# The documented JSON interface (README, "--format json", version 1).
SUMMARY_KEYS = {"in_sync", "modified", "missing", "unmanaged", "max_severity"}
DRIFT_KEYS = {
    "cluster",
    "namespace",
    "name",
    "status",
    "severity",
    "findings",
    "diff",
    "desired_source",
    "live_change",
    "blast_radius",
}
FINDING_KEYS = {"rule", "severity", "direction", "message", "evidence"}
SOURCE_KEYS = {"path", "line", "commit"}
LIVE_CHANGE_KEYS = {"manager", "operation", "time"}

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not on PATH")


# --- running the command -----------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.out)
        return data


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """The real command, in a fresh interpreter, with pipes for stdout and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "driftwatch", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """``driftwatch check ARGS`` in-process; argparse errors exit as the console script does."""
    capsys.readouterr()
    try:
        status = main(["check", *args])
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return Result(status, out, err)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Status 2, nothing on stdout, exactly one ``driftwatch check: error:`` line on stderr."""
    assert result.status == 2, result
    assert result.out == ""
    assert "Traceback" not in result.err
    assert result.err.endswith("\n")
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith(ERROR_PREFIX), result.err
    message = result.err[len(ERROR_PREFIX) :].rstrip("\n")
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def drifts_by_key(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["namespace"], d["name"]): d for d in report["drifts"]}


def rules_of(drift: dict[str, Any]) -> list[str]:
    return [f["rule"] for f in drift["findings"]]


def rank(severity: str) -> int:
    return SEVERITIES.index(severity)


# --- manifests -----------------------------------------------------------------------------


def policy(name: str, namespace: str | None = None, port: int = 80, labels: str = "") -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata:\n"
        f"  name: {name}{ns}\n" + (f"  labels: {{{labels}}}\n" if labels else "") + "spec:\n"
        "  podSelector: {}\n"
        "  ingress:\n"
        f"  - ports: [{{port: {port}}}]\n"
    )


def live_policy(
    name: str, namespace: str, port: int = 80, labels: str = "", manager: str | None = None
) -> str:
    """One item of ``kubectl get networkpolicies -A -o yaml``: as served, with defaults."""
    fields = (
        "  managedFields:\n"
        f"  - manager: {manager}\n"
        "    operation: Update\n"
        "    time: '2026-11-27T03:12:44Z'\n"
        "    fieldsType: FieldsV1\n"
        "    fieldsV1: {f:spec: {}}\n"
        if manager
        else ""
    )
    body = (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  namespace: {namespace}\n"
        + (f"  labels: {{{labels}}}\n" if labels else "")
        + "  uid: 0f6d4c2e-0000-0000-0000-000000000001\n"
        "  resourceVersion: '4711'\n"
        "  generation: 1\n"
        "  creationTimestamp: '2026-11-01T00:00:00Z'\n" + fields + "spec:\n"
        "  podSelector: {}\n"
        "  policyTypes: [Ingress]\n"
        "  ingress:\n"
        f"  - ports: [{{port: {port}, protocol: TCP}}]\n"
    )
    return "".join(("  " if i else "- ") + line + "\n" for i, line in enumerate(body.splitlines()))


def snapshot(*items: str) -> str:
    head = "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: ''}\n"
    return head + ("items:\n" + "".join(items) if items else "items: []\n")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user or system git config, no repository above tmp_path, a private cache."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("NO_COLOR", raising=False)


# --- the bundled example -------------------------------------------------------------------


def git_out(*args: str, cwd: Path) -> str | None:
    """Output of a successful git command, or None (no git, not a repository, failure)."""
    if shutil.which("git") is None:
        return None
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def example_source(relative: str, name: str) -> dict[str, Any]:
    """Where ``check`` must say the example policy ``name`` comes from.

    The line is where the policy's document starts (its ``apiVersion:`` line); the path
    is relative to the repository root in a Git work tree (else to the --desired
    directory), and the commit is HEAD when the file is committed and unmodified.
    """
    file = EXAMPLES / "policies" / relative
    lines = file.read_text().splitlines()
    at = lines.index(f"  name: {name}")
    line = max(i for i in range(at) if lines[i].startswith("apiVersion:")) + 1
    top = git_out("rev-parse", "--show-toplevel", cwd=file.parent)
    if top is None:
        return {"path": relative, "line": line, "commit": None}
    path = file.relative_to(Path(top).resolve()).as_posix()
    tracked = git_out("ls-files", "--error-unmatch", "--", path, cwd=Path(top)) is not None
    clean = git_out("status", "--porcelain", "--", path, cwd=Path(top)) == ""
    commit = git_out("rev-parse", "HEAD", cwd=Path(top)) if tracked and clean else None
    return {"path": path, "line": line, "commit": commit}


def check_shape(report: dict[str, Any]) -> None:
    """Exactly the documented JSON shape; adding a key means updating the README first."""
    assert set(report) == {"summary", "drifts"}
    summary = report["summary"]
    assert set(summary) == SUMMARY_KEYS
    for status in ("in_sync", "modified", "missing", "unmanaged"):
        assert isinstance(summary[status], int)
    assert summary["max_severity"] is None or summary["max_severity"] in SEVERITIES
    for drift in report["drifts"]:
        assert set(drift) == DRIFT_KEYS, drift.keys()
        assert drift["status"] in ("modified", "missing", "unmanaged")
        assert drift["severity"] in SEVERITIES
        assert drift["findings"], drift
        for finding in drift["findings"]:
            assert set(finding) == FINDING_KEYS, finding.keys()
            assert finding["severity"] in SEVERITIES
            assert finding["direction"] in ("exposure", "isolation", "hygiene")
            assert finding["message"]
            assert "\n" not in finding["message"]
            assert isinstance(finding["evidence"], dict)
        # "A drift's severity is the highest of its findings."
        assert drift["severity"] == max((f["severity"] for f in drift["findings"]), key=rank)
        assert drift["diff"].startswith("--- desired\n+++ live\n")
        source = drift["desired_source"]
        if drift["status"] == "unmanaged":
            assert source is None
        else:
            assert set(source) == SOURCE_KEYS
            assert isinstance(source["line"], int)
        if drift["live_change"] is not None:
            assert set(drift["live_change"]) == LIVE_CHANGE_KEYS
    # Sorted by severity (highest first), then namespace, then name.
    order = [(-rank(d["severity"]), d["namespace"], d["name"]) for d in report["drifts"]]
    assert order == sorted(order)
    severities = [d["severity"] for d in report["drifts"]]
    assert summary["max_severity"] == (max(severities, key=rank) if severities else None)
    counted = sum(summary[s] for s in ("modified", "missing", "unmanaged"))
    assert counted == len(report["drifts"])


def test_bundled_example_reports_its_drifts_in_the_documented_json_shape() -> None:
    result = run_cli(*EXAMPLE_ARGS, "--format", "json")

    assert result.status == 1, result.err
    assert result.err == ""
    report = result.json()
    check_shape(report)
    summary = report["summary"]
    assert {k: summary[k] for k in ("in_sync", "modified", "missing", "unmanaged")} == {
        "in_sync": 10,
        "modified": 3,
        "missing": 1,
        "unmanaged": 1,
    }
    assert rank(summary["max_severity"]) >= rank("high")

    drifts = drifts_by_key(report)
    assert set(drifts) == {
        ("payments", "default-deny"),
        ("payments", "api-egress-to-card-processor"),
        ("shop", "db-allow-from-backend"),
        ("shop", "debug-allow-all"),
        ("monitoring", "prometheus-scrape"),
    }
    assert {d["cluster"] for d in report["drifts"]} == {"default"}

    deny = drifts[("payments", "default-deny")]
    assert deny["status"] == "missing"
    assert rank(deny["severity"]) >= rank("high")
    assert "policy-missing" in rules_of(deny)
    missing = next(f for f in deny["findings"] if f["rule"] == "policy-missing")
    assert missing["severity"] == "high"
    assert deny["desired_source"] == example_source("payments/policies.yaml", "default-deny")
    assert deny["desired_source"]["line"] == 2  # after the file's comment line, as documented
    assert deny["live_change"] is None
    deny_body = deny["diff"].splitlines()[3:]
    assert deny_body
    assert all(line.startswith("-") for line in deny_body)  # the live side is empty
    assert "-  name: default-deny" in deny_body

    db = drifts[("shop", "db-allow-from-backend")]
    assert db["status"] == "modified"
    assert "spec-modified" in rules_of(db)
    assert db["live_change"] == {
        "manager": "kubectl-edit",
        "operation": "Update",
        "time": "2026-11-27T03:12:44Z",
    }
    assert db["desired_source"] == example_source("shop/db.yaml", "db-allow-from-backend")
    assert db["desired_source"]["line"] == 1
    assert "+        cidr: 0.0.0.0/0" in db["diff"].splitlines()

    debug = drifts[("shop", "debug-allow-all")]
    assert debug["status"] == "unmanaged"
    assert "policy-unmanaged" in rules_of(debug)
    assert debug["desired_source"] is None
    assert all(line.startswith("+") for line in debug["diff"].splitlines()[3:])

    scrape = drifts[("monitoring", "prometheus-scrape")]
    assert scrape["status"] == "modified"
    assert rules_of(scrape) == ["metadata-modified"]  # a label added: nothing riskier
    assert scrape["severity"] == "info"
    assert scrape["findings"][0]["severity"] == "info"
    assert scrape["desired_source"] == example_source(
        "monitoring/policies.yaml", "prometheus-scrape"
    )
    assert scrape["live_change"]["manager"] == "kubectl-label"
    assert "+    owner: oncall" in scrape["diff"].splitlines()

    card = drifts[("payments", "api-egress-to-card-processor")]
    assert card["status"] == "modified"
    assert card["desired_source"] == example_source(
        "payments/policies.yaml", "api-egress-to-card-processor"
    )
    assert card["live_change"]["manager"] == "kubectl-edit"
    assert "-        cidr: 203.0.113.0/24" in card["diff"].splitlines()


def test_bundled_example_text_report_has_a_summary_and_one_block_per_drift(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = run_main(capsys, *EXAMPLE_ARGS, "--format", "json").json()
    result = run_cli(*EXAMPLE_ARGS)  # stdout is a pipe, not a terminal

    assert result.status == 1
    assert result.err == ""
    assert ANSI not in result.out
    assert "\x1b" not in result.out
    blocks = result.out.rstrip("\n").split("\n\n")
    assert blocks[0] == (
        "5 drifts (3 modified, 1 missing, 1 unmanaged), 10 in sync; "
        f"highest severity {report['summary']['max_severity']}"
    )
    assert len(blocks) == 1 + len(report["drifts"])
    for block, drift in zip(blocks[1:], report["drifts"], strict=True):
        lines = block.splitlines()
        assert lines[0].split() == [
            drift["severity"].upper(),
            drift["status"],
            f"{drift['namespace']}/{drift['name']}",
        ]
        for finding in drift["findings"]:
            assert f"{finding['rule']}: {finding['message']}" in block
        source = drift["desired_source"]
        desired_lines = [line.strip() for line in lines if line.strip().startswith("desired:")]
        if source is None:
            assert desired_lines == []
        else:
            where = f"{source['path']}:{source['line']}"
            if source["commit"]:
                where += f"@{source['commit'][:12]}"
            assert desired_lines == [f"desired: {where}"]
        # The diff, desired first, at the end of the block (indented as a whole).
        start = next(i for i, line in enumerate(lines) if line.strip() == "--- desired")
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        assert lines[start + 1] == f"{indent}+++ live"
        assert [line.removeprefix(indent) for line in lines[start:]] == drift["diff"].splitlines()

    db = blocks[1 + list(drifts_by_key(report)).index(("shop", "db-allow-from-backend"))]
    assert "changed by kubectl-edit (Update) at 2026-11-27T03:12:44Z" in db
    unmanaged = blocks[1 + list(drifts_by_key(report)).index(("shop", "debug-allow-all"))]
    assert "changed by kubectl-client-side-apply (Update) at 2026-11-27T02:58:10Z" in unmanaged


def _run_on_a_terminal(*args: str, env: dict[str, str]) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftwatch", "check", *args],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 1
    return b"".join(chunks).decode()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = _run_on_a_terminal(*EXAMPLE_ARGS, env=env)
    assert ANSI in coloured
    assert "payments/default-deny" in coloured
    plain = _run_on_a_terminal(*EXAMPLE_ARGS, env={**env, "NO_COLOR": "1"})
    assert "\x1b" not in plain
    assert "payments/default-deny" in plain


# --- --fail-on and exit statuses -------------------------------------------------------------


@pytest.fixture
def label_drift(tmp_path: Path) -> tuple[Path, Path]:
    """One policy whose only drift is a label added in the cluster (metadata-modified)."""
    desired = write(tmp_path / "desired" / "web.yaml", policy("web", "shop", labels="team: a"))
    live = write(
        tmp_path / "live.yaml",
        snapshot(live_policy("web", "shop", labels="team: a, owner: oncall")),
    )
    return desired, live


@pytest.mark.parametrize("fail_on", [*SEVERITIES, "never", None])
@pytest.mark.parametrize("severity", SEVERITIES)
def test_fail_on_sets_the_exit_status_from_the_highest_severity(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    label_drift: tuple[Path, Path],
    severity: str,
    fail_on: str | None,
) -> None:
    desired, live = label_drift
    config = write(
        tmp_path / "driftwatch.yaml", f"rules:\n  severity: {{metadata-modified: {severity}}}\n"
    )
    args = ["--desired", str(desired), "--live", str(live), "--config", str(config)]
    args += ["--format", "json"]
    if fail_on is not None:
        args += ["--fail-on", fail_on]

    result = run_main(capsys, *args)

    report = result.json()
    assert report["summary"]["max_severity"] == severity
    assert [d["severity"] for d in report["drifts"]] == [severity]
    threshold = fail_on or "low"  # the documented default
    expected = 0 if threshold == "never" else int(rank(severity) >= rank(threshold))
    assert result.status == expected
    assert result.err == ""


def test_medium_drift_fails_from_medium_down_and_passes_from_high_up(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, label_drift: tuple[Path, Path]
) -> None:
    desired, live = label_drift
    config = write(tmp_path / "c.yaml", "rules:\n  severity: {metadata-modified: medium}\n")
    base = ["--desired", str(desired), "--live", str(live), "--config", str(config)]
    statuses = {
        fail_on: run_main(capsys, *base, *(["--fail-on", fail_on] if fail_on else [])).status
        for fail_on in ("critical", "high", "medium", "low", "info", "never", None)
    }
    assert statuses == {
        "critical": 0,
        "high": 0,
        "medium": 1,
        "low": 1,
        "info": 1,
        "never": 0,
        None: 1,
    }


def test_label_only_drift_is_info_and_passes_by_default(
    capsys: pytest.CaptureFixture[str], label_drift: tuple[Path, Path]
) -> None:
    desired, live = label_drift
    result = run_main(capsys, "--desired", str(desired), "--live", str(live))
    assert result.status == 0
    assert result.out.splitlines()[0] == ("1 drift (1 modified), 0 in sync; highest severity info")
    strict = run_main(capsys, "--desired", str(desired), "--live", str(live), "--fail-on", "info")
    assert strict.status == 1


def test_fail_on_never_and_critical_on_the_bundled_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = run_main(capsys, *EXAMPLE_ARGS, "--format", "json").json()
    assert run_main(capsys, *EXAMPLE_ARGS, "--fail-on", "never").status == 0
    assert run_main(capsys, *EXAMPLE_ARGS, "--fail-on", "high").status == 1
    critical = run_main(capsys, *EXAMPLE_ARGS, "--fail-on", "critical").status
    assert critical == int(report["summary"]["max_severity"] == "critical")


def test_no_drift_exits_0_with_null_max_severity_and_no_drifts(tmp_path: Path) -> None:
    write(tmp_path / "desired" / "web.yaml", policy("web", "shop", port=8080))
    write(tmp_path / "desired" / "db.yaml", policy("db", "shop", port=5432))
    live = write(
        tmp_path / "live.yaml",
        snapshot(live_policy("web", "shop", port=8080), live_policy("db", "shop", port=5432)),
    )
    args = ("--desired", str(tmp_path / "desired"), "--live", str(live))

    result = run_cli(*args, "--format", "json", "--fail-on", "info")

    assert result.status == 0
    assert result.err == ""
    report = result.json()
    check_shape(report)
    assert report == {
        "summary": {
            "in_sync": 2,
            "modified": 0,
            "missing": 0,
            "unmanaged": 0,
            "max_severity": None,
        },
        "drifts": [],
    }
    text = run_cli(*args)
    assert text.status == 0
    assert text.out == "0 drifts, 2 in sync\n"


def test_drift_keeps_exit_status_1_when_the_reader_of_stdout_leaves(tmp_path: Path) -> None:
    """`driftwatch check ... | head`: the pipe closes early, the drift is still reported."""
    write(tmp_path / "desired" / "web.yaml", policy("web", "shop"))
    live = write(tmp_path / "live.yaml", snapshot())
    args = ["--desired", str(tmp_path / "desired"), "--live", str(live)]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before anything is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "driftwatch", "check", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr == ""


# --- --desired-git ---------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"


@dataclass(frozen=True)
class Upstream:
    repo: Path
    first: str
    second: str
    live: Path


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """clusters/prod in two commits (the first tagged v1), and the live state after both.

    Commit 1: prod web (port 80), db (5432), gone; staging web (outside the sub-path).
    Commit 2: web moves below a Deployment (line 6) with port 8080; new policy `new`.
    Live: web on 9090 and db on 5433 (modified), `new` as in commit 2, `gone` deleted.
    """
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "README.md", "policies\n")
    prod = repo / "clusters" / "prod"
    write(prod / "web.yaml", policy("web", "prod"))
    write(prod / "db.yaml", policy("db", "prod", port=5432))
    write(prod / "gone.yaml", "# decommissioned soon\n" + policy("gone", "prod"))
    write(repo / "clusters" / "staging" / "web.yaml", policy("web", "staging"))
    first = commit_all(repo, "first")
    git(repo, "tag", "v1")
    write(prod / "web.yaml", DEPLOYMENT + "---\n" + policy("web", "prod", port=8080))
    write(prod / "extra" / "new.yaml", policy("new", "prod", port=7000))
    second = commit_all(repo, "second")
    live = write(
        tmp_path / "live" / "prod.yaml",
        snapshot(
            live_policy("web", "prod", port=9090, manager="kubectl-edit"),
            live_policy("db", "prod", port=5433),
            live_policy("new", "prod", port=7000),
        ),
    )
    return Upstream(repo, first, second, live)


def git_check(capsys: pytest.CaptureFixture[str], up: Upstream, cache: Path, *extra: str) -> Result:
    return run_main(
        capsys,
        "--desired-git",
        str(up.repo),
        "--path",
        "clusters/prod",
        "--live",
        str(up.live),
        "--format",
        "json",
        "--cache-dir",
        str(cache),
        *extra,
    )


@needs_git
def test_desired_git_reports_the_branch_head_commit_repo_paths_and_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Upstream
) -> None:
    status_before = git(upstream.repo, "status", "--porcelain")

    result = git_check(capsys, upstream, tmp_path / "cache")

    assert result.status == 1, result.err
    report = result.json()
    check_shape(report)
    assert report["summary"] == {
        "in_sync": 1,  # new
        "modified": 2,  # web, db
        "missing": 1,  # gone
        "unmanaged": 0,
        "max_severity": report["summary"]["max_severity"],
    }
    head = upstream.second
    assert {key: d["desired_source"] for key, d in drifts_by_key(report).items()} == {
        ("prod", "web"): {"path": "clusters/prod/web.yaml", "line": 6, "commit": head},
        ("prod", "db"): {"path": "clusters/prod/db.yaml", "line": 1, "commit": head},
        ("prod", "gone"): {"path": "clusters/prod/gone.yaml", "line": 2, "commit": head},
    }
    web = drifts_by_key(report)[("prod", "web")]
    assert "-      port: 8080" in web["diff"].splitlines()
    assert "+      port: 9090" in web["diff"].splitlines()
    assert web["live_change"]["manager"] == "kubectl-edit"
    assert drifts_by_key(report)[("prod", "gone")]["status"] == "missing"
    assert git(upstream.repo, "status", "--porcelain") == status_before  # untouched

    text = run_main(
        capsys,
        "--desired-git",
        str(upstream.repo),
        "--path",
        "clusters/prod",
        "--live",
        str(upstream.live),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert text.status == 1
    assert f"desired: clusters/prod/web.yaml:6@{head[:12]}\n" in text.out
    assert f"desired: clusters/prod/gone.yaml:2@{head[:12]}\n" in text.out
    assert "changed by kubectl-edit (Update) at 2026-11-27T03:12:44Z" in text.out
    assert ANSI not in text.out


@needs_git
@pytest.mark.parametrize("ref", ["first-sha", "v1"])
def test_desired_git_at_an_older_ref_reports_that_commit_and_its_content(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Upstream, ref: str
) -> None:
    ref = upstream.first if ref == "first-sha" else ref

    result = git_check(capsys, upstream, tmp_path / "cache", "--ref", ref)

    assert result.status == 1, result.err
    report = result.json()
    check_shape(report)
    drifts = drifts_by_key(report)
    first = upstream.first
    assert {key: (d["status"], d["desired_source"]) for key, d in drifts.items()} == {
        ("prod", "web"): (
            "modified",
            {"path": "clusters/prod/web.yaml", "line": 1, "commit": first},
        ),
        ("prod", "db"): ("modified", {"path": "clusters/prod/db.yaml", "line": 1, "commit": first}),
        ("prod", "gone"): (
            "missing",
            {"path": "clusters/prod/gone.yaml", "line": 2, "commit": first},
        ),
        ("prod", "new"): ("unmanaged", None),  # only added in the second commit
    }
    assert report["summary"]["in_sync"] == 0
    assert "-      port: 80" in drifts[("prod", "web")]["diff"].splitlines()
    assert "policy-unmanaged" in rules_of(drifts[("prod", "new")])


@needs_git
def test_desired_git_error_names_repository_ref_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Upstream
) -> None:
    git(upstream.repo, "checkout", "-q", "-b", "broken")
    write(
        upstream.repo / "clusters" / "prod" / "bad.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nkind: NetworkPolicy\n",
    )
    commit_all(upstream.repo, "broken")
    git(upstream.repo, "checkout", "-q", "main")

    result = git_check(capsys, upstream, tmp_path / "cache", "--ref", "broken")

    assert_one_line_error(
        result,
        f"{upstream.repo}@broken: ",
        "clusters/prod/bad.yaml:3: duplicate key 'kind' (first at line 2)",
    )
    unknown = git_check(capsys, upstream, tmp_path / "cache", "--ref", "nope")
    assert_one_line_error(unknown, f"{upstream.repo}@nope: ", "'nope'")


@needs_git
def test_unusable_cache_directory_is_a_one_line_error_not_a_traceback(
    tmp_path: Path, upstream: Upstream
) -> None:
    not_a_dir = write(tmp_path / "cache-file", "x\n")
    result = run_cli(
        "--desired-git",
        str(upstream.repo),
        "--live",
        str(upstream.live),
        "--cache-dir",
        str(not_a_dir / "git"),
    )
    assert_one_line_error(result, str(not_a_dir))


# --- errors ----------------------------------------------------------------------------------

NO_NAME = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  namespace: x\n"
UNKNOWN_FIELD = (
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: web\n"
    "spec:\n  podSelector: {}\n  ingres: []\n"
)
MALFORMED = (
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: web\n"
    "  labels: {a: b\nspec: {}\n"
)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"ok.yaml": policy("ok"), "sub/bad.yaml": MALFORMED},
            ["sub/bad.yaml:6: ", "(line 5)"],
            id="malformed-yaml",
        ),
        pytest.param(
            {"list.yaml": "# a list, not an object\n- 1\n- 2\n"},
            ["list.yaml:2: ", "not a mapping"],
            id="not-a-mapping",
        ),
        pytest.param(
            {"s.yaml": policy("ok") + "---\njust a string\n"},
            ["s.yaml:10: ", "not a mapping"],
            id="scalar-document",
        ),
        pytest.param(
            {"noname.yaml": DEPLOYMENT + "---\n" + NO_NAME},
            ["noname.yaml:6: ", "metadata.name", "required"],
            id="policy-without-name",
        ),
        pytest.param(
            {"port.yaml": policy("web", "prod", port=70000)},
            ["port.yaml:1: ", "prod/web", "spec.ingress[0].ports[0].port", "70000"],
            id="port-out-of-range",
        ),
        pytest.param(
            {"typo.yaml": "# typo\n" + UNKNOWN_FIELD},
            ["typo.yaml:2: ", "spec.ingres", "unknown field"],
            id="unknown-field",
        ),
        pytest.param(
            {"dup.yaml": policy("web") + "kind: NetworkPolicy\n"},
            ["dup.yaml:9: ", "duplicate key 'kind'", "line 2"],
            id="duplicate-key",
        ),
        pytest.param(
            {
                "a.yaml": policy("web", "prod"),
                "b/c.yaml": DEPLOYMENT + "---\n" + policy("web", "prod"),
            },
            ["duplicate NetworkPolicy", "a.yaml:1", "b/c.yaml:6"],
            id="same-policy-twice",
        ),
        pytest.param(
            {"a.yaml": policy("web", "default"), "b.yaml": "#\n" + policy("web")},
            ["duplicate NetworkPolicy default/web", "a.yaml:1", "b.yaml:2"],
            id="same-policy-via-default-namespace",
        ),
        pytest.param(
            {"bin.yaml": "kind: \udcff\n"},
            ["bin.yaml:1: ", "UTF-8"],
            id="not-utf8",
        ),
    ],
)
def test_desired_errors_are_one_line_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    desired = tmp_path / "desired"
    for name, text in files.items():
        path = desired / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    live = write(tmp_path / "live.yaml", snapshot(live_policy("web", "prod")))

    result = run_main(capsys, "--desired", str(desired), "--live", str(live))

    assert_one_line_error(result, *expected)


def test_errors_from_the_real_command_are_one_line_without_traceback(tmp_path: Path) -> None:
    desired = write(tmp_path / "desired" / "bad.yaml", MALFORMED)
    live = write(tmp_path / "live.yaml", snapshot())
    result = run_cli("--desired", str(desired.parent), "--live", str(live))
    assert_one_line_error(result, "bad.yaml:6: ")

    duplicate = write(tmp_path / "dup" / "x.yaml", policy("a", "n") + "---\n" + policy("a", "n"))
    result = run_cli("--desired", str(duplicate.parent), "--live", str(live), "--format", "json")
    assert_one_line_error(result, "duplicate NetworkPolicy n/a: x.yaml:1 and x.yaml:11")


@pytest.mark.parametrize(
    ("live_text", "expected"),
    [
        pytest.param(
            "apiVersion: v1\nkind: List\nitems:\n- name: a: b\n- {}\n", ":4: ", id="malformed-yaml"
        ),
        pytest.param(
            snapshot(live_policy("web", "prod"), live_policy("db", "prod", port=0)),
            ":19: ",  # 4 lines of List header, 14 lines per item
            id="invalid-port",
        ),
        pytest.param(
            snapshot(live_policy("web", "prod"), live_policy("web", "prod")),
            ":5 and ",
            id="same-policy-twice",
        ),
    ],
)
def test_live_snapshot_errors_name_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, live_text: str, expected: str
) -> None:
    write(tmp_path / "desired" / "web.yaml", policy("web", "prod"))
    live = write(tmp_path / "live.yaml", live_text)
    result = run_main(capsys, "--desired", str(tmp_path / "desired"), "--live", str(live))
    assert_one_line_error(result, f"{live}{expected}")


def test_missing_live_path_is_an_error_not_an_empty_cluster(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "desired" / "web.yaml", policy("web", "prod"))
    nope = tmp_path / "nope.yaml"
    result = run_main(capsys, "--desired", str(tmp_path / "desired"), "--live", str(nope))
    assert_one_line_error(result, str(nope), "no such file")

    missing_desired = run_main(
        capsys, "--desired", str(tmp_path / "absent"), "--live", str(tmp_path / "desired")
    )
    assert_one_line_error(missing_desired, "absent", "no such file")


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        pytest.param("default_namespace: x\nbogus: 1\n", ":2: ", id="unknown-key"),
        pytest.param("rules:\n  disabled: [no-such-rule]\n", ":2: ", id="unknown-rule"),
        pytest.param("rules:\n  severity: {spec-modified: urgent}\n", ":2: ", id="bad-severity"),
        pytest.param("ignore: [\n", ":2: ", id="malformed-yaml"),
        pytest.param("ignore:\n  policies:\n  - selector: 'a in ('\n", ":3: ", id="selector"),
    ],
)
def test_bad_config_is_a_one_line_error_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config_text: str, expected: str
) -> None:
    write(tmp_path / "desired" / "web.yaml", policy("web", "prod"))
    live = write(tmp_path / "live.yaml", snapshot(live_policy("web", "prod")))
    config = write(tmp_path / "driftwatch.yaml", config_text)
    result = run_main(
        capsys,
        "--desired",
        str(tmp_path / "desired"),
        "--live",
        str(live),
        "--config",
        str(config),
    )
    assert_one_line_error(result, f"{config}{expected}")


def test_missing_config_file_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "desired" / "web.yaml", policy("web", "prod"))
    live = write(tmp_path / "live.yaml", snapshot(live_policy("web", "prod")))
    nope = tmp_path / "nope.yaml"
    result = run_main(
        capsys, "--desired", str(tmp_path / "desired"), "--live", str(live), "--config", str(nope)
    )
    assert_one_line_error(result, str(nope))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--format", "xml"], "--format", id="bad-format"),
        pytest.param(["--fail-on", "urgent"], "--fail-on", id="bad-fail-on"),
        pytest.param(["--live"], "--live", id="live-without-value"),
        pytest.param(["--desired-git", "x"], "--desired", id="two-desired-sources"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], expected: str
) -> None:
    desired = write(tmp_path / "web.yaml", policy("web", "prod"))
    live = write(tmp_path / "live.yaml", snapshot(live_policy("web", "prod")))
    result = run_main(capsys, "--desired", str(desired), "--live", str(live), *args)
    assert_one_line_error(result, expected)


def test_bad_arguments_from_the_real_command(tmp_path: Path) -> None:
    desired = write(tmp_path / "web.yaml", policy("web", "prod"))
    live = write(tmp_path / "live.yaml", snapshot(live_policy("web", "prod")))

    xml = run_cli("--desired", str(desired), "--live", str(live), "--format", "xml")
    assert_one_line_error(xml, "--format", "xml")

    no_live = run_cli("--desired", str(desired))
    assert_one_line_error(no_live, "--live", "required")

    no_desired = run_cli("--live", str(live))
    assert_one_line_error(no_desired, "--desired")

    ref = run_cli("--desired", str(desired), "--live", str(live), "--ref", "main")
    assert_one_line_error(ref, "--ref", "--desired-git")


def test_ref_and_path_need_desired_git(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    desired = write(tmp_path / "web.yaml", policy("web", "prod"))
    live = write(tmp_path / "live.yaml", snapshot(live_policy("web", "prod")))
    base = ("--desired", str(desired), "--live", str(live))
    assert_one_line_error(run_main(capsys, *base, "--ref", "v1"), "--ref")
    assert_one_line_error(run_main(capsys, *base, "--path", "clusters"), "--path")


# --- --default-namespace and --cluster ----------------------------------------------------


def test_default_namespace_places_namespace_less_manifests(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    desired = write(tmp_path / "desired" / "web.yaml", policy("web"))  # no namespace
    live = write(tmp_path / "live.yaml", snapshot(live_policy("web", "team-a")))
    config = write(tmp_path / "driftwatch.yaml", "default_namespace: team-b\n")
    base = ["--desired", str(desired.parent), "--live", str(live), "--format", "json"]

    placed = run_main(capsys, *base, "--default-namespace", "team-a")
    assert placed.status == 0
    assert placed.json()["summary"]["in_sync"] == 1

    # The command line overrides the configuration's default_namespace...
    overriding = run_main(capsys, *base, "--config", str(config), "--default-namespace", "team-a")
    assert overriding.status == 0
    assert overriding.json()["summary"]["in_sync"] == 1

    # ...which applies without it; without either, the namespace is "default".
    for extra, namespace in ((["--config", str(config)], "team-b"), ([], "default")):
        result = run_main(capsys, *base, *extra)
        assert result.status == 1
        statuses = {key: d["status"] for key, d in drifts_by_key(result.json()).items()}
        assert statuses == {(namespace, "web"): "missing", ("team-a", "web"): "unmanaged"}


def test_invalid_default_namespace_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    desired = write(tmp_path / "desired" / "web.yaml", policy("web"))
    live = write(tmp_path / "live.yaml", snapshot())
    result = run_main(
        capsys, "--desired", str(desired), "--live", str(live), "--default-namespace", "Team_A"
    )
    assert_one_line_error(result, "web.yaml:1: ", "Team_A")


def test_cluster_name_appears_in_every_drift(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "desired" / "web.yaml", policy("web", "shop"))
    live = write(tmp_path / "live.yaml", snapshot(live_policy("db", "shop")))
    result = run_main(
        capsys,
        "--desired",
        str(tmp_path / "desired"),
        "--live",
        str(live),
        "--cluster",
        "prod-eu-1",
        "--format",
        "json",
    )
    assert result.status == 1
    drifts = result.json()["drifts"]
    assert sorted((d["cluster"], d["name"], d["status"]) for d in drifts) == [
        ("prod-eu-1", "db", "unmanaged"),
        ("prod-eu-1", "web", "missing"),
    ]


# --- large trees: worker processes give what a sequential read gives ------------------------


@pytest.fixture(scope="module")
def large_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """More than 1 MiB of desired YAML (parsed in worker processes) and its drifted live state."""
    root = tmp_path_factory.mktemp("large")
    with pytest.MonkeyPatch.context() as mp:
        # generate() writes with PyYAML's pure-Python emitter (~5 s); libyaml's writes the
        # same documents in a fraction of that.
        if yaml.__with_libyaml__:
            mp.setattr(
                benchmarks.generate.yaml,
                "safe_dump_all",
                functools.partial(yaml.dump_all, Dumper=yaml.CSafeDumper),
            )
        desired, live = generate(root, policies=1300, drifts=30, namespaces=10)
    assert sum(p.stat().st_size for p in desired.rglob("*.yaml")) > 1 << 20
    return desired, live


@pytest.fixture
def parallel_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Two CPUs as far as check knows (so it forks workers), and a record of parallel reads."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    calls: list[int] = []
    original = Collector._read_parallel

    def spy(self: Collector, executor: Any, files: list[Path]) -> Any:
        calls.append(len(files))
        return original(self, executor, files)

    monkeypatch.setattr(Collector, "_read_parallel", spy)
    return calls


def test_parallel_loading_of_a_large_tree_equals_sequential_loading(
    capsys: pytest.CaptureFixture[str], large_tree: tuple[Path, Path], parallel_reads: list[int]
) -> None:
    desired, live = large_tree

    result = run_main(capsys, "--desired", str(desired), "--live", str(live), "--format", "json")

    assert parallel_reads == [10]  # the files were parsed in worker processes
    assert result.status == 1
    assert result.err == ""
    sequential = compare_all(
        load_path(desired, executor=None).policies, load_snapshot(live), RuleEngine()
    )
    expected = report_json(sequential)
    assert result.json() == expected
    summary = expected["summary"]
    assert summary["in_sync"] + summary["modified"] + summary["missing"] == 1300
    assert summary["unmanaged"] == 10
    assert {d["desired_source"]["path"] for d in expected["drifts"] if d["desired_source"]} <= {
        f"ns-{i}.yaml" for i in range(10)
    }


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_comparing_in_forked_shares_writes_what_one_process_writes(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    large_tree: tuple[Path, Path],
    fmt: str,
) -> None:
    """A large check compares and renders in one process per core; the report is the same,
    byte for byte, drifts in the same order, as when one process does it all."""
    desired, live = large_tree
    args = ("--desired", str(desired), "--live", str(live), "--format", fmt)
    monkeypatch.setattr(_shards, "PARALLEL_MIN_KEYS", 100)
    forks: list[int] = []
    forked = _shards._forked

    def spy(work: _shards.Work, count: int) -> Any:
        forks.append(count)
        return forked(work, count)

    monkeypatch.setattr(_shards, "_forked", spy)
    monkeypatch.setattr(check_command, "workers", lambda: 3)
    shared = run_main(capsys, *args)
    monkeypatch.setattr(check_command, "workers", lambda: 1)
    alone = run_main(capsys, *args)

    assert forks == [3]  # the first run forked two children and took a share itself
    assert shared.status == alone.status == 1
    assert shared.err == alone.err == ""
    assert shared.out == alone.out
    if fmt == "json":
        assert len(shared.json()["drifts"]) >= 40


def test_malformed_file_in_a_large_tree_still_names_file_and_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    large_tree: tuple[Path, Path],
    parallel_reads: list[int],
) -> None:
    desired = tmp_path / "desired"
    shutil.copytree(large_tree[0], desired)
    broken = desired / "ns-3.yaml"
    lines = broken.read_text().count("\n")
    with broken.open("a") as fh:
        fh.write("---\nkind: NetworkPolicy\nkind: NetworkPolicy\n")
    with (desired / "ns-7.yaml").open("a") as fh:  # later in walk order: not the one reported
        fh.write("---\n[\n")

    result = run_main(capsys, "--desired", str(desired), "--live", str(large_tree[1]))

    assert parallel_reads == [10]
    message = assert_one_line_error(
        result, f"ns-3.yaml:{lines + 3}: duplicate key 'kind' (first at line {lines + 2})"
    )
    with pytest.raises(DesiredStateError) as sequential:
        load_path(desired, executor=None)
    assert message == str(sequential.value)
