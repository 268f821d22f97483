"""The table ``driftwatch bench`` prints."""

from __future__ import annotations

from typing import Any

__all__ = ["TARGETS", "format_table", "targets"]

TARGETS = {
    "p99_ms": 100.0,
    "events_per_s": 5000,
    "ratio": 0.25,
    "sync_50000_s": 10.0,
    "rss_mb_50000": 400.0,
}


def targets(figures: dict[str, Any], detail: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met? — ``None`` when not measured)."""
    rows: list[tuple[str, str, bool | None]] = []
    p99 = figures["latency_ms"]["p99"]
    rows.append((f"p99 <= 100 ms at 200/s (ran at {figures['rate']:g}/s)", f"{p99} ms", p99 <= 100))
    eps = figures["events_per_s"]
    rows.append((">= 5,000 events/s at saturation", f"{eps}/s", eps >= TARGETS["events_per_s"]))
    ratio = figures["ratio"]
    rows.append(("ratio >= 0.25", f"{ratio}", ratio >= TARGETS["ratio"]))
    big = detail.get("sync", {}).get("50000")
    if big is None:
        rows.append(("initial sync at 50,000 <= 10 s", "not measured", None))
        rows.append(("RSS <= 400 MB at 50,000", "not measured", None))
    else:
        rows.append(("initial sync at 50,000 <= 10 s", f"{big['sync_s']} s", big["sync_s"] <= 10))
        rows.append(("RSS <= 400 MB at 50,000", f"{big['rss_mb']} MB", big["rss_mb"] <= 400))
    zero = figures["missed"] == 0 and figures["duplicates"] == 0
    rows.append(("missed = duplicates = 0", f"{figures['missed']} / {figures['duplicates']}", zero))
    return rows


def _placement(placement: dict[str, list[int]]) -> str:
    if not placement:
        return "unknown"
    return ", ".join(f"{who} {','.join(map(str, cpus)) or '?'}" for who, cpus in placement.items())


def format_table(figures: dict[str, Any], detail: dict[str, Any]) -> str:
    lat = figures["latency_ms"]
    sat = detail.get("saturation", {})
    t = detail.get("tally", {})
    lines = [
        f"driftwatch bench: {figures['policies']} policies, {figures['changes']} changes"
        f" at {figures['rate']:g}/s (achieved {detail.get('achieved_rate', 0):g}/s,"
        f" daemon CPU {detail.get('paced_daemon_cpu', 0):.0%} of a core meanwhile)",
        f"  CPUs: {_placement(detail.get('placement', {}))}",
        "",
        f"  {'change -> webhook received, ms':<44}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}",
        f"  {'  from the write answered':<44}"
        + "".join(f"{lat[k]:8.1f}" for k in ("p50", "p95", "p99", "max")),
    ]
    sent = detail.get("latency_from_sent_ms")
    if sent:
        lines.append(
            f"  {'  from the write sent':<44}"
            + "".join(f"{sent[k]:8.1f}" for k in ("p50", "p95", "p99", "max"))
        )
    lines += [
        f"  change mix: {', '.join(f'{k} {v}' for k, v in detail.get('mix', {}).items())}",
        "",
        f"  saturation: daemon (parse .. outbox)        {figures['events_per_s']:>8} events/s"
        f"  ({sat.get('drain_s', 0)} s for the backlog, daemon CPU {sat.get('drain_cpu_s', 0)} s)",
        f"  limit: minimal client (read + json)         {figures['limit_events_per_s']:>8}"
        f" events/s  ({sat.get('limit_s', 0)} s)",
        f"  ratio                                       {figures['ratio']:>8}",
        f"  (backlog written at {sat.get('backlog_write_per_s', 0)} changes/s)",
        "",
        f"  {'policies':>10}{'initial sync s':>16}{'daemon peak RSS MB':>20}",
    ]
    for size, s in sorted(detail.get("sync", {}).items(), key=lambda kv: int(kv[0])):
        lines.append(f"  {size:>10}{s['sync_s']:>16.2f}{s['rss_mb']:>20.1f}")
    lines += [
        "",
        f"  deliveries: {t.get('expected', 0)} expected, {t.get('delivered', 0)} delivered;"
        f" missed {figures['missed']}, duplicates {figures['duplicates']},"
        f" resends (same webhook-id) {t.get('resends', 0)}, unexpected {t.get('unexpected', 0)}",
        "",
        "  targets:",
    ]
    for name, measured, met in targets(figures, detail):
        mark = "-" if met is None else ("met" if met else "NOT met")
        lines.append(f"    {name:<44}{measured:>14}  {mark}")
    if sat.get("profile_top"):
        lines += ["", "  daemon profile of the drain (cProfile, by own time):", sat["profile_top"]]
    return "\n".join(lines)
