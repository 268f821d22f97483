"""How ``check`` writes a report: text for humans (colour on a terminal), JSON for machines.

The JSON shape is a documented interface (README, "check --format json").
"""

from __future__ import annotations

import json
from typing import Any

from driftwatch.drift import Report, drift_json
from driftwatch.rules import Severity, Status

__all__ = ["SCHEMA_STATUSES", "render_json", "render_text", "report_json"]

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


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
"""Without ``indent``, so the C encoder does the work (with it, json falls back to Python:
a third of the time of a 10,000-drift report)."""


def render_json(report: Report) -> str:
    """The report as JSON: the summary, then one drift per line."""
    data = report_json(report)
    drifts = ",\n  ".join(_ENCODER.encode(d) for d in data["drifts"])
    listed = f"[\n  {drifts}\n ]" if drifts else "[]"
    return f'{{"summary": {_ENCODER.encode(data["summary"])},\n "drifts": {listed}}}\n'


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
    n = len(report.drifts)
    parts = [
        f"{report.counts.get(s, 0)} {s}" for s in SCHEMA_STATUSES[1:] if report.counts.get(s, 0)
    ]
    detail = f" ({', '.join(parts)})" if parts else ""
    worst = f"; highest severity {report.max_severity}" if report.max_severity is not None else ""
    ignored = f", {report.ignored} ignored" if report.ignored else ""
    noun = "drift" if n == 1 else "drifts"
    return f"{n} {noun}{detail}, {report.counts.get(Status.IN_SYNC, 0)} in sync{ignored}{worst}"


def render_text(report: Report, *, colour: bool = False) -> str:
    paint = _Paint(colour)
    out = [summary_line(report)]
    for drift in report.drifts:
        k = drift.key
        out.append("")
        out.append(
            f"{paint.severity(drift.severity)}  {drift.status}  {k.namespace}/{k.name}"
            + (f"  (cluster {k.cluster})" if k.cluster != "default" else "")
        )
        if drift.source is not None:
            s = drift.source
            out.append(f"  desired: {s.path}:{s.line}" + (f"@{s.commit[:12]}" if s.commit else ""))
        if drift.live is not None and drift.live.origin is not None and drift.live.origin.manager:
            out.append(f"  live:    {drift.live.origin.describe()}")
        for f in drift.findings:
            out.append(f"  - [{f.severity}] {f.rule}: {f.message}")
        if drift.diff:
            out.extend("    " + paint.diff_line(line) for line in drift.diff.splitlines())
    return "\n".join(out) + "\n"
