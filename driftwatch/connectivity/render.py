"""A connectivity diff or list as text, CSV, Markdown or JSON.

``txt`` is np-guard/netpol-analyzer's line format (one line a pair after the header
``Connectivity diff:``; nothing at all when the states allow the same traffic), so the
two tools' outputs compare as sets of lines.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

from driftwatch.connectivity.diff import Connection, PairDiff

__all__ = ["FORMATS", "Format", "render_diff", "render_list"]

Format = Literal["txt", "json", "csv", "md"]
FORMATS: tuple[Format, ...] = ("txt", "json", "csv", "md")


def diff_line(d: PairDiff) -> str:
    line = (
        f"diff-type: {d.diff_type}, source: {d.source}, destination: {d.destination}, "
        f"ref1: {d.ref1.text()}, ref2: {d.ref2.text()}"
    )
    if d.workloads_diff_info:
        line += f", workloads-diff-info: {d.workloads_diff_info}"
    return line


def diff_json(d: PairDiff) -> dict[str, Any]:
    return {
        "diff_type": d.diff_type,
        "source": d.source,
        "destination": d.destination,
        "ref1": d.ref1.text(),
        "ref2": d.ref2.text(),
        "workloads_diff_info": d.workloads_diff_info,
    }


def _row(d: PairDiff) -> list[str]:
    return [
        d.diff_type, d.source, d.destination, d.ref1.text(), d.ref2.text(),
        d.workloads_diff_info or "",
    ]  # fmt: skip


def render_diff(diffs: Sequence[PairDiff], fmt: Format, *, ref1: str, ref2: str) -> str:
    """The diff in ``fmt``; ``ref1``/``ref2`` name the two states (json, csv, md)."""
    if fmt == "json":
        body = {"ref1": ref1, "ref2": ref2, "diff": [diff_json(d) for d in diffs]}
        return json.dumps(body, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["diff-type", "source", "destination", ref1, ref2, "workloads-diff-info"])
        writer.writerows(_row(d) for d in diffs)
        return out.getvalue()
    if fmt == "md":
        header = ["diff-type", "source", "destination", ref1, ref2, "workloads-diff-info"]
        lines = [_md(header), _md(["---"] * len(header))]
        lines += [_md(_row(d)) for d in diffs]
        return "\n".join(lines) + "\n"
    if not diffs:
        return ""
    return "Connectivity diff:\n" + "".join(diff_line(d) + "\n" for d in diffs)


def _md(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_list(connections: Sequence[Connection], fmt: Format) -> str:
    """One state's allowed connections in ``fmt``, in netpol-analyzer's connection-list
    shapes (txt: ``source => destination : conns``; csv and md: ``src``, ``dst``, ``conn``)."""
    if fmt == "json":
        rows = [
            {"source": c.source, "destination": c.destination, "connections": c.conns.text()}
            for c in connections
        ]
        return json.dumps({"connections": rows}, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["src", "dst", "conn"])
        writer.writerows([c.source, c.destination, c.conns.text()] for c in connections)
        return out.getvalue()
    if fmt == "md":
        lines = [_md(["src", "dst", "conn"]), "|-----|-----|------|"]
        lines += [_md([c.source, c.destination, c.conns.text()]) for c in connections]
        return "\n".join(lines) + "\n"
    return "".join(f"{c.source} => {c.destination} : {c.conns.text()}\n" for c in connections)
