"""driftwatch's connectivity diff agrees with np-guard/netpol-analyzer on its reference cases.

The data in ``tests/data/netpol-analyzer`` is that project's (Apache License 2.0; see its
README.md and LICENSE there), unchanged: for each line of ``pairs.tsv``, the txt diff from
ref1 to ref2 must equal the expected file as a set of lines, the header aside; an empty
expected file means the two states allow the same traffic (and driftwatch prints nothing).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from driftwatch.connectivity import Connectivity, connectivity_diff, render_diff
from driftwatch.desired.cluster_dir import load_cluster_dir

CORPUS = Path(__file__).parent / "data" / "netpol-analyzer"
HEADER = "Connectivity diff:"


def _pairs() -> list[tuple[str, str, str]]:
    rows = []
    for line in (CORPUS / "pairs.tsv").read_text().splitlines():
        if line.strip():
            ref1, ref2, expected = line.split("\t")
            rows.append((ref1, ref2, expected))
    return rows


def _lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and line != HEADER}


def _txt_diff(ref1: str, ref2: str) -> str:
    one = load_cluster_dir(CORPUS / "cases" / ref1)
    two = load_cluster_dir(CORPUS / "cases" / ref2)
    diffs = connectivity_diff(
        Connectivity(one.topology, one.policies), Connectivity(two.topology, two.policies)
    )
    return render_diff(diffs, "txt", ref1="ref1", ref2="ref2")


def test_the_corpus_is_all_there() -> None:
    assert len(_pairs()) == 12
    assert (CORPUS / "LICENSE").is_file()


@pytest.mark.parametrize(("ref1", "ref2", "expected"), _pairs(), ids=lambda v: str(v)[:40])
def test_txt_diff_equals_netpol_analyzers_as_a_set_of_lines(
    ref1: str, ref2: str, expected: str
) -> None:
    want = (CORPUS / expected).read_text()
    got = _txt_diff(ref1, ref2)
    assert _lines(got) == _lines(want)
    if not _lines(want):
        assert got == ""  # no difference: nothing printed, as netpol-analyzer
    else:
        assert got.splitlines()[0] == HEADER
        assert len(got.splitlines()) == len(_lines(got)) + 1  # no line twice


def test_the_command_prints_the_same_lines() -> None:
    ref1, ref2, expected = _pairs()[10]  # onlineboutique: changed, added and removed lines
    out = subprocess.run(
        [
            *(sys.executable, "-m", "driftwatch", "connectivity", "diff"),
            str(CORPUS / "cases" / ref1),
            str(CORPUS / "cases" / ref2),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert _lines(out.stdout) == _lines((CORPUS / expected).read_text())
    kinds = [line.split(",")[0] for line in out.stdout.splitlines()[1:]]
    assert kinds == sorted(
        kinds, key=["diff-type: changed", "diff-type: added", "diff-type: removed"].index
    )


def test_the_connection_list_matches_netpol_analyzers_connlist() -> None:
    case = CORPUS / "cases" / "netpol-analysis-example-minimal"
    out = subprocess.run(
        [sys.executable, "-m", "driftwatch", "connectivity", "list", str(case)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == (case / "connlist_output.txt").read_text().splitlines()
    md = subprocess.run(
        [sys.executable, "-m", "driftwatch", "connectivity", "list", str(case), "--format", "md"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert md.stdout.splitlines() == (case / "connlist_output.md").read_text().splitlines()
