"""``driftwatch check --kubeconfig/--live-context``: the live state read from a cluster (the
sandbox, seeded with the example snapshot) gives the same drifts as ``--live`` with that
snapshot; every problem is one ``driftwatch check: error:`` line with exit status 2.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftwatch.sandbox import DEFAULT_TOKEN, SandboxThread
from driftwatch.sandbox.kubeconfig import kubeconfig, write_kubeconfig
from tests.test_cli_check import Result, run_main
from tests.test_cli_check import assert_one_line_error as one_line_error

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples"
DESIRED = ("--desired", str(EXAMPLES / "policies"), "--config", str(EXAMPLES / "driftwatch.yaml"))
ERROR_PREFIX = "driftwatch check: error: "


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """As for ``--live``, and the sandbox's token never shows."""
    message = one_line_error(result, *fragments)
    assert DEFAULT_TOKEN not in message
    return message


@pytest.fixture(scope="module")
def example_cluster() -> Iterator[SandboxThread]:
    with SandboxThread(seed=[EXAMPLES / "live"]) as st:
        yield st


def without_live_change(report: dict[str, Any]) -> dict[str, Any]:
    drifts = [{k: v for k, v in d.items() if k != "live_change"} for d in report["drifts"]]
    return {"summary": report["summary"], "drifts": drifts}


def test_the_cluster_gives_the_same_drifts_as_the_snapshot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, example_cluster: SandboxThread
) -> None:
    config = example_cluster.kubeconfig_path(tmp_path)
    snapshot = run_main(capsys, *DESIRED, "--live", str(EXAMPLES / "live"), "--format", "json")
    cluster = run_main(capsys, *DESIRED, "--kubeconfig", str(config), "--format", "json")
    assert snapshot.status == cluster.status == 1
    assert cluster.err == ""
    from_file, from_cluster = json.loads(snapshot.out), json.loads(cluster.out)
    assert without_live_change(from_cluster) == without_live_change(from_file)
    assert from_cluster["summary"]["modified"] >= 1
    changes = [d["live_change"] for d in from_cluster["drifts"] if d["status"] != "missing"]
    assert changes
    assert all(c["manager"] == "kubectl-client-side-apply" for c in changes)

    text = run_main(capsys, *DESIRED, "--kubeconfig", str(config), "--fail-on", "never")
    assert text.status == 0
    assert "changed by kubectl-client-side-apply" in text.out


def test_live_context_alone_uses_the_kubeconfig_variable(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    example_cluster: SandboxThread,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(example_cluster.kubeconfig_path(tmp_path)))
    by_context = run_main(capsys, *DESIRED, "--live-context", "driftwatch-sandbox")
    by_file = run_main(capsys, *DESIRED, "--live", str(EXAMPLES / "live"))
    assert by_context.status == by_file.status == 1
    assert by_context.out.splitlines()[0] == by_file.out.splitlines()[0]  # the summary

    other = run_main(capsys, *DESIRED, "--live-context", "prod-eu-1")
    assert_one_line_error(other, "no context 'prod-eu-1'", "driftwatch-sandbox")


def test_live_sources_are_exclusive_and_one_is_required(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    both = run_main(
        capsys, *DESIRED, "--live", str(EXAMPLES / "live"), "--kubeconfig", str(tmp_path)
    )
    assert_one_line_error(both, "--live", "--kubeconfig")
    neither = run_main(capsys, *DESIRED)
    assert_one_line_error(neither, "--live", "--kubeconfig", "required")


def test_cluster_problems_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    gone = write_kubeconfig(tmp_path / "gone", kubeconfig(url, DEFAULT_TOKEN))
    unreachable = run_main(capsys, *DESIRED, "--kubeconfig", str(gone))
    assert_one_line_error(unreachable, f"cannot reach the Kubernetes API server at {url}")

    missing = run_main(capsys, *DESIRED, "--kubeconfig", str(tmp_path / "nope"))
    assert_one_line_error(missing, str(tmp_path / "nope"), "no such file")

    with SandboxThread(require_auth=True) as st:
        wrong = write_kubeconfig(tmp_path / "wrong", kubeconfig(st.url, "wrong-token"))
        denied = run_main(capsys, *DESIRED, "--kubeconfig", str(wrong))
    message = assert_one_line_error(denied, "401", "list and watch on networkpolicies")
    assert "wrong-token" not in message
