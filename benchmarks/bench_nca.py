"""Benchmark: `driftwatch connectivity diff` side by side with network-config-analyzer.

Run: python -m benchmarks.bench_nca [--venv PATH] [--nca-version V] [--repeat N]
     [--timeout S] [--synthetic]

network-config-analyzer (PyPI ``network-config-analyzer``, CLI ``nca``) is never a
dependency of driftwatch: this script makes a virtualenv of its own (default
``~/.cache/driftwatch/nca-venv``) and pip-installs the pinned version there when it is
missing. For each line of ``tests/data/netpol-analyzer/pairs.tsv`` it runs, as
subprocesses (both pay an interpreter's start-up), nca's semantic diff from REF1 to REF2::

    nca --semantic_diff REF2 --pod_list REF2 --ns_list REF2
        --base_np_list REF1 --base_pod_list REF1 --base_ns_list REF1

and ``driftwatch connectivity diff REF1 REF2``, each ``--repeat`` times (default 3), and
prints per case: nca's verdict (``are [not] semantically equivalent`` or ``the same set of
policies`` in its output; exit code 0 equivalent, 1 not), driftwatch's (no output:
equivalent), whether they agree, the median times (and driftwatch's in-process median)
and the ratio nca / driftwatch; then the agreement count and the median ratio. A case nca
cannot run is an "nca error" (its message is shown), not a disagreement. ``--synthetic``
adds one run of each on bench_connectivity's synthetic cluster (500 workloads, 1,000
policies), with ``--timeout``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_connectivity import CORPUS, pairs, synthetic_states, txt_diff

NCA_PACKAGE = "network-config-analyzer"
NCA_VERSION = "2.1.0"  # the newest release; installs and runs on Python 3.11


Done = subprocess.CompletedProcess[str]


@dataclass
class Run:
    verdict: bool | None  # True: equivalent; None: the tool failed
    seconds: float
    note: str = ""
    output: str = ""


def ensure_nca(venv: Path, version: str) -> Path:
    """The ``nca`` executable of ``venv``, made and installed there when missing."""
    nca = venv / "bin" / "nca"
    if nca.exists():
        out = subprocess.run([nca, "--version"], capture_output=True, text=True, check=False)
        if out.stdout.split()[-1:] == [version]:
            return nca
    if not (venv / "bin" / "python").exists():
        print(f"creating {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    print(f"installing {NCA_PACKAGE}=={version} into {venv}", file=sys.stderr)
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", f"{NCA_PACKAGE}=={version}"],
        check=True,
    )
    return nca


def nca_command(nca: Path, ref1: Path, ref2: Path) -> list[str]:
    """nca's semantic diff from ``ref1`` (the base) to ``ref2``, each directory giving its
    policies, pods (workloads) and namespaces."""
    return [
        str(nca),
        *("--semantic_diff", str(ref2), "--pod_list", str(ref2), "--ns_list", str(ref2)),
        *("--base_np_list", str(ref1), "--base_pod_list", str(ref1)),
        *("--base_ns_list", str(ref1)),
    ]


def nca_verdict(code: int, stdout: str, stderr: str) -> tuple[bool | None, str]:
    if "are not semantically equivalent" in stdout:
        verdict: bool | None = False
    elif "are semantically equivalent" in stdout or "the same set of policies" in stdout:
        verdict = True
    else:
        errors = [ln for ln in stderr.splitlines() if ln.startswith("Error")] or [
            f"exit {code}: {stderr.strip().splitlines()[-1:]}"
        ]
        return None, errors[0]
    if code not in (0, 1) or (code == 0) != verdict:
        return verdict, f"exit code {code} does not match the text"
    return verdict, ""


def timed(cmd: list[str], repeat: int, timeout: float) -> tuple[float, Done]:
    """The median wall time of ``repeat`` runs of ``cmd``, and the last run; with more
    than one run, after an untimed warm-up (bytecode caches written, files cached)."""
    if repeat > 1:
        subprocess.run(cmd, capture_output=True, check=False, timeout=timeout)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        times.append(time.perf_counter() - start)
    return statistics.median(times), done


def run_nca(nca: Path, ref1: Path, ref2: Path, repeat: int, timeout: float) -> Run:
    try:
        seconds, done = timed(nca_command(nca, ref1, ref2), repeat, timeout)
    except subprocess.TimeoutExpired:
        return Run(None, timeout, f"timed out after {timeout:.0f} s")
    verdict, note = nca_verdict(done.returncode, done.stdout, done.stderr)
    return Run(verdict, seconds, note, done.stdout)


def run_driftwatch(ref1: Path, ref2: Path, repeat: int, timeout: float) -> Run:
    cmd = [sys.executable, "-m", "driftwatch", "connectivity", "diff", str(ref1), str(ref2)]
    try:
        seconds, done = timed(cmd, repeat, timeout)
    except subprocess.TimeoutExpired:
        return Run(None, timeout, f"timed out after {timeout:.0f} s")
    if done.returncode != 0:
        return Run(None, seconds, done.stderr.strip().splitlines()[-1])
    lines = [ln for ln in done.stdout.splitlines()[1:] if ln]
    return Run(not lines, seconds, f"{len(lines)} pairs")


def in_process(ref1: Path, ref2: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        txt_diff(ref1, ref2)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _word(verdict: bool | None) -> str:
    return {True: "equiv", False: "differ", None: "ERROR"}[verdict]


@dataclass
class Case:
    outcome: str  # agree, DISAGREE, nca error, driftwatch error
    ratio: float | None  # nca / driftwatch (subprocesses), when both ran
    row: str


def compare(nca: Path, ref1: Path, ref2: Path, repeat: int, timeout: float) -> Case:
    """One case, both tools, and its printed row."""
    n = run_nca(nca, ref1, ref2, repeat, timeout)
    d = run_driftwatch(ref1, ref2, repeat, timeout)
    inproc = in_process(ref1, ref2, repeat)
    ratio = None
    if n.verdict is None:
        outcome = "nca error"
    elif d.verdict is None:
        outcome = "driftwatch error"
    else:
        outcome = "agree" if n.verdict == d.verdict else "DISAGREE"
        ratio = n.seconds / d.seconds
    shown = f"{ratio:5.2f}x" if ratio is not None else "    - "
    row = (
        f"  {_word(n.verdict):6s} {_word(d.verdict):6s} {outcome:16s} "
        f"{n.seconds:6.2f} s {d.seconds:6.2f} s {inproc * 1000:7.1f} ms {shown}  "
        f"{ref1.name} -> {ref2.name}\n"
    )
    if n.note:
        row += f"      nca: {n.note}\n"
    if outcome == "DISAGREE":  # nca's first findings, to see why
        findings = [
            ln for ln in n.output.splitlines() if ln.startswith(("src", "Added", "Removed"))
        ]
        row += "".join(f"      nca: {ln}\n" for ln in findings[:4])
    row += f"      driftwatch: {d.note}\n"
    return Case(outcome, ratio, row)


HEAD = (
    "  nca    dw     outcome             nca      dw (sub) dw (in-proc) nca/dw  case\n"
    "  ------ ------ ---------------- -------- -------- ---------- ------  ----"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_venv = Path.home() / ".cache" / "driftwatch" / "nca-venv"
    parser.add_argument("--venv", type=Path, default=default_venv, help="nca's own virtualenv")
    parser.add_argument("--nca-version", default=NCA_VERSION)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for one run")
    parser.add_argument("--synthetic", action="store_true", help="also the 500/1,000 cluster")
    args = parser.parse_args()
    nca = ensure_nca(args.venv.expanduser(), args.nca_version)
    version = subprocess.run([nca, "--version"], capture_output=True, text=True, check=False)
    print(f"{version.stdout.strip()} ({nca}); median of {args.repeat} runs each")
    print(HEAD)
    cases = []
    for ref1, ref2, _ in pairs():
        case = compare(
            nca, CORPUS / "cases" / ref1, CORPUS / "cases" / ref2, args.repeat, args.timeout
        )
        print(case.row, end="")
        cases.append(case)
    count = Counter(c.outcome for c in cases)
    ratios = [c.ratio for c in cases if c.ratio is not None]
    print(
        f"agreement {count['agree']}/{len(cases)} ({count['DISAGREE']} disagreement(s), "
        f"{count['nca error']} nca error(s), {count['driftwatch error']} driftwatch error(s)); "
        f"median time ratio nca/driftwatch {statistics.median(ratios):.2f}x over the "
        f"{len(ratios)} cases both ran (min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
    )
    if args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            one, two, _ = synthetic_states(
                Path(tmp), workloads=500, policies=1_000, changes=50, seed=7
            )
            print("synthetic cluster (500 workloads, 1,000 policies, 50 changed), one run each:")
            print(HEAD)
            print(compare(nca, one, two, 1, args.timeout).row, end="")


if __name__ == "__main__":
    main()
