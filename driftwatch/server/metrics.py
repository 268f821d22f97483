"""Prometheus metrics of one daemon, in a registry of their own (no module globals).

:class:`Metrics` is built once (``driftwatch run`` builds it) and passed explicitly. The
layers below the daemon never import prometheus_client: they are handed its methods as
plain callbacks (``PolicyWatcher(on_event=metrics.watch_event,
on_restart=metrics.watch_restart)``, ``Outbox(on_outcome=metrics.notification)``).

Counters and the histogram move as things happen. The gauges that need the incident store
(an async, possibly remote store) or a provider (the replica's role) are set just before
each scrape by the daemon's refresh (see ``server.app``): nothing is read when nobody
scrapes, and a scrape always sees the store as it is, not as it was at the last tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

from driftwatch.drift import DriftEvent, EventKind
from driftwatch.incidents import Incident
from driftwatch.policy import PolicyKey

__all__ = [
    "LATENCY_BUCKETS",
    "OUTCOMES",
    "SEVERITIES",
    "WATCH_EVENT_TYPES",
    "DriftAges",
    "Metrics",
    "summarise_incidents",
]

SEVERITIES = ("info", "low", "medium", "high", "critical")
"""The ``severity`` label's values (``none`` too, for a drift without findings)."""
OUTCOMES = ("delivered", "retry", "dead_letter", "disabled")
"""The ``outcome`` label of ``driftwatch_notifications_total``."""
WATCH_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
"""Watch event types counted as themselves; anything else the server sends is ``OTHER``
(the label's values stay bounded whatever the server says)."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Detection latency buckets, seconds (an in-sync key costs microseconds; a drifted one
milliseconds; a burst queues behind others)."""


class Metrics:
    """Every driftwatch metric, in :attr:`registry`. Methods are cheap and never raise."""

    def __init__(
        self,
        *,
        version: str = "unknown",
        process: bool = True,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        """``process``: also export the standard ``process_*`` metrics (CPU, memory, file
        descriptors; read from /proc at scrape time)."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._watch_events = Counter(
            "driftwatch_watch_events", "Watch events received, by type.", ["type"], registry=r
        )
        self._watch_restarts = Counter(
            "driftwatch_watch_restarts",
            "Watches restarted and lists retried, by reason (closed, expired, unreachable, "
            "disconnected, read_timeout, server_error, throttled, ...).",
            ["reason"],
            registry=r,
        )
        self._drifts_open = Gauge(
            "driftwatch_drifts_open", "Open drifts, by severity.", ["severity"], registry=r
        )
        self._severities: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        """Every severity label set so far (reset to 0 when none is open)."""
        self._oldest = Gauge(
            "driftwatch_drift_oldest_open_seconds",
            "Age of the oldest open drift (0: none open).",
            registry=r,
        )
        self._latency = Histogram(
            "driftwatch_detection_latency_seconds",
            "From a watch event's arrival to the drift event it caused.",
            buckets=tuple(latency_buckets),
            registry=r,
        )
        self._notifications = Counter(
            "driftwatch_notifications",
            "Delivery attempts, by receiver and outcome (delivered, retry, dead_letter, "
            "disabled: dead-lettered and the receiver disabled).",
            ["receiver", "outcome"],
            registry=r,
        )
        self._pending = Gauge(
            "driftwatch_outbox_pending", "Notifications waiting in the outbox.", registry=r
        )
        self._dead_letters = Gauge(
            "driftwatch_dead_letters", "Notifications in the dead-letter table.", registry=r
        )
        self._git_last_sync = Gauge(
            "driftwatch_git_last_sync_timestamp_seconds",
            "Unix time of the last successful Git fetch (0: none yet).",
            registry=r,
        )
        self._git_errors = Counter(
            "driftwatch_git_sync_errors", "Git fetches that failed.", registry=r
        )
        self._desired_errors = Counter(
            "driftwatch_desired_load_errors",
            "Commits that could not be read (the last good desired state was kept).",
            registry=r,
        )
        self._webhooks = Counter(
            "driftwatch_git_webhook_requests",
            "Requests to the Git push hook, by provider and result (accepted, ignored, "
            "ping, unauthorized, bad_request).",
            ["provider", "result"],
            registry=r,
        )
        self._leader = Gauge(
            "driftwatch_leader",
            "1 when this replica does the work (the leader, or the only replica), else 0.",
            registry=r,
        )
        build = Gauge(
            "driftwatch_build_info", "driftwatch's version (value 1).", ["version"], registry=r
        )
        build.labels(version).set(1)
        for severity in SEVERITIES:
            self._drifts_open.labels(severity)
        if process:
            ProcessCollector(registry=r)
        self._event_children = {t: self._watch_events.labels(t) for t in WATCH_EVENT_TYPES}
        self._other_events = self._watch_events.labels("OTHER")

    # --- callbacks for the layers below -----------------------------------------------------

    def watch_event(self, type_: str) -> None:
        """One event of a watch stream (``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK``,
        ``ERROR``)."""
        self._event_children.get(type_, self._other_events).inc()

    def watch_restart(self, reason: str) -> None:
        """A watch restarted (or a list retried) for ``reason``."""
        self._watch_restarts.labels(reason).inc()

    def notification(self, receiver: str, outcome: str) -> None:
        """One notification's attempt ended with ``outcome`` (see :data:`OUTCOMES`)."""
        self._notifications.labels(receiver, outcome).inc()

    def declare_receivers(self, names: Iterable[str]) -> None:
        """Export every (receiver, outcome) series at 0 from the start."""
        for name in names:
            for outcome in OUTCOMES:
                self._notifications.labels(name, outcome)

    def drift_detected(self, seconds: float) -> None:
        """A drift event was emitted ``seconds`` after the watch event that caused it."""
        self._latency.observe(max(0.0, seconds))

    def git_synced(self, at: float) -> None:
        """A Git fetch succeeded at Unix time ``at``."""
        self._git_last_sync.set(at)

    def git_sync_failed(self) -> None:
        self._git_errors.inc()

    def desired_load_failed(self) -> None:
        self._desired_errors.inc()

    def git_webhook(self, provider: str, result: str) -> None:
        self._webhooks.labels(provider, result).inc()

    # --- gauges set at scrape time --------------------------------------------------------

    def set_open_drifts(self, by_severity: Mapping[str, int], oldest_seconds: float) -> None:
        """Open drifts per severity (missing severities: 0, also one set earlier, such as
        ``none``) and the oldest one's age."""
        self._severities.update(by_severity)
        for severity in self._severities:
            self._drifts_open.labels(severity).set(by_severity.get(severity, 0))
        self._oldest.set(max(0.0, oldest_seconds))

    def set_outbox(self, *, pending: int, dead_letters: int) -> None:
        self._pending.set(pending)
        self._dead_letters.set(dead_letters)

    def set_leader(self, leader: bool) -> None:
        self._leader.set(1 if leader else 0)

    # --- exposition -----------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for (Prometheus text by default,
        OpenMetrics when asked): (body, content type)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def _unix(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def summarise_incidents(incidents: Iterable[Incident], now: float) -> tuple[dict[str, int], float]:
    """Open incidents per severity (``none`` without one) and the oldest one's age in
    seconds (from ``opened_at``; 0 when none is open)."""
    counts: dict[str, int] = {}
    oldest: float | None = None
    for incident in incidents:
        if not incident.is_open:
            continue
        severity = incident.severity or "none"
        counts[severity] = counts.get(severity, 0) + 1
        opened = _unix(incident.opened_at)
        if opened is not None and (oldest is None or opened < oldest):
            oldest = opened
    return counts, 0.0 if oldest is None else now - oldest


class DriftAges:
    """Open drifts by key, with severity and the time they opened, kept from the drift
    events (used when no incident store knows ``opened_at``). Loop-confined: fed by the
    engine, read by the scrape, both on the event loop. A drift open before a restart
    counts from the restart."""

    def __init__(self) -> None:
        self._open: dict[PolicyKey, tuple[str, float]] = {}

    def observe(self, event: DriftEvent, now: float) -> None:
        severity = str(event.drift.severity) if event.drift.severity is not None else "none"
        if event.kind is EventKind.RESOLVED:
            self._open.pop(event.key, None)
        elif event.kind is EventKind.OPENED:
            self._open[event.key] = (severity, now)
        else:
            opened = self._open.get(event.key, (severity, now))[1]
            self._open[event.key] = (severity, opened)

    def summary(self, now: float) -> tuple[dict[str, int], float]:
        """Open drifts per severity and the oldest one's age in seconds (0: none)."""
        counts: dict[str, int] = {}
        for severity, _ in self._open.values():
            counts[severity] = counts.get(severity, 0) + 1
        oldest = min((at for _, at in self._open.values()), default=now)
        return counts, now - oldest

    def __len__(self) -> int:
        return len(self._open)
