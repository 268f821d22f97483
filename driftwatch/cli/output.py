"""How ``check`` writes a report: text for humans (colour on a terminal), JSON for machines.

The JSON shape is a documented interface (README, "check --format json").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from driftwatch.drift import Drift, Report, drift_json
from driftwatch.rules import Severity, Status

__all__ = [
    "SCHEMA_STATUSES",
    "assemble_json",
    "assemble_text",
    "drift_line_json",
    "drift_text",
    "render_json",
    "render_text",
    "report_json",
    "summary_json",
    "summary_text",
]

SCHEMA_STATUSES = (Status.IN_SYNC, Status.MODIFIED, Status.MISSING, Status.UNMANAGED)

_COLOURS = {
    Severity.CRITICAL: "\033[1;97;41m",
    Severity.HIGH: "\033[1;31m",
    Severity.MEDIUM: "\033[33m",
    Severity.LOW: "\033[36m",
    Severity.INFO: "\033[2m",
}
_RESET = "\033[0m"


def report_json(report: Report) -> dict[str, Any]:
    summary: dict[str, Any] = {str(s): report.counts.get(s, 0) for s in SCHEMA_STATUSES}
    summary["max_severity"] = None if report.max_severity is None else str(report.max_severity)
    return {"summary": summary, "drifts": [drift_json(d) for d in report.drifts]}


_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(", ", ": "))
"""Without ``indent``, so the C encoder does the work (with it, json falls back to Python:
a third of the time of a 10,000-drift report). No circular check: the drifts are trees
built just for this, and marking every dict and list costs a tenth of the encoding."""


def render_json(report: Report) -> str:
    """The report as JSON: the summary, then one drift per line."""
    return assemble_json(
        summary_json(report.counts, report.max_severity),
        [drift_line_json(d) for d in report.drifts],
    )


def summary_json(counts: Mapping[Status, int], max_severity: Severity | None) -> str:
    summary: dict[str, Any] = {str(s): counts.get(s, 0) for s in SCHEMA_STATUSES}
    summary["max_severity"] = None if max_severity is None else str(max_severity)
    return _ENCODER.encode(summary)


def drift_line_json(drift: Drift) -> str:
    """One drift of the JSON report, on one line."""
    return _ENCODER.encode(drift_json(drift))


def assemble_json(summary: str, drifts: Sequence[str]) -> str:
    """The JSON report from its rendered summary and drifts (most severe first)."""
    joined = ",\n  ".join(drifts)
    listed = f"[\n  {joined}\n ]" if joined else "[]"
    return f'{{"summary": {summary},\n "drifts": {listed}}}\n'


class _Paint:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.enabled else text

    def severity(self, severity: Severity | None) -> str:
        if severity is None:
            return "-"
        return self(str(severity).upper(), _COLOURS[severity])

    def diff_line(self, line: str) -> str:
        if line.startswith(("+++", "---")):
            return self(line, "\033[1m")
        if line.startswith("+"):
            return self(line, "\033[32m")
        if line.startswith("-"):
            return self(line, "\033[31m")
        if line.startswith("@@"):
            return self(line, "\033[36m")
        return line


def summary_line(report: Report) -> str:
    return summary_text(len(report.drifts), report.counts, report.ignored, report.max_severity)


def summary_text(
    n: int, counts: Mapping[Status, int], ignored: int, max_severity: Severity | None
) -> str:
    """``3 drifts (2 modified, 1 missing), 7 in sync, 1 ignored; highest severity high``."""
    parts = [f"{counts.get(s, 0)} {s}" for s in SCHEMA_STATUSES[1:] if counts.get(s, 0)]
    detail = f" ({', '.join(parts)})" if parts else ""
    worst = f"; highest severity {max_severity}" if max_severity is not None else ""
    dropped = f", {ignored} ignored" if ignored else ""
    noun = "drift" if n == 1 else "drifts"
    return f"{n} {noun}{detail}, {counts.get(Status.IN_SYNC, 0)} in sync{dropped}{worst}"


def drift_text(drift: Drift, *, colour: bool = False) -> str:
    """One drift of the text report: its lines, after the blank line that separates it."""
    paint = _Paint(colour)
    k = drift.key
    out = [
        "",
        f"{paint.severity(drift.severity)}  {drift.status}  {k.namespace}/{k.name}"
        + (f"  (cluster {k.cluster})" if k.cluster != "default" else ""),
    ]
    if drift.source is not None:
        s = drift.source
        out.append(f"  desired: {s.path}:{s.line}" + (f"@{s.commit[:12]}" if s.commit else ""))
    if drift.live is not None and drift.live.origin is not None and drift.live.origin.manager:
        out.append(f"  live:    {drift.live.origin.describe()}")
    for f in drift.findings:
        out.append(f"  - [{f.severity}] {f.rule}: {f.message}")
    radius = drift.blast_radius
    if radius is not None and radius.pairs:
        out.append(f"  blast radius: {len(radius.pairs)} pair(s) change")
        out.extend(f"    {line}" for line in radius.summary(limit=10))
        if len(radius.pairs) > 10:
            out.append(f"    ... and {len(radius.pairs) - 10} more (--format json lists 50)")
    if drift.diff:
        out.extend("    " + paint.diff_line(line) for line in drift.diff.splitlines())
    return "\n".join(out)


def assemble_text(summary: str, drifts: Sequence[str]) -> str:
    """The text report from its summary line and rendered drifts (most severe first)."""
    return "\n".join([summary, *drifts]) + "\n"


def render_text(report: Report, *, colour: bool = False) -> str:
    return assemble_text(
        summary_line(report), [drift_text(d, colour=colour) for d in report.drifts]
    )
