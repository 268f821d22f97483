"""An incident about the desired state itself: Git cannot be fetched, or a commit cannot be
read.

The daemon keeps comparing the cluster with the last good desired state when a Git fetch or
a commit's reading fails (see ``daemon.run``); :class:`DesiredHealth`, assigned to
``Daemon.on_desired``, makes that visible to the people on call:

* a commit that cannot be read (malformed YAML, an invalid manifest, a missing path) opens
  the incident at once: it will not fix itself. Its finding's message is the loader's one
  line, naming ``file:line``; status ``unreadable``.
* a fetch that fails (the remote unreachable, renamed, or refusing the credentials) opens it
  only after :data:`FETCH_FAILURES` consecutive failed fetches, or once fetches have failed
  for :data:`FETCH_GRACE` seconds, whichever comes first, so that a network blip does not
  page. Its finding says ``cannot fetch <url without credentials>``; status
  ``unreachable``; git's own error is the incident's ``reason`` and the finding's evidence.
* the first fetch whose commit is read (or was already the current one) resolves it.

The incident's key is :func:`desired_state_key` (``<cluster>//desired-state``: an empty
namespace, which no NetworkPolicy has), its finding's rule id
:data:`DESIRED_STATE_UNREADABLE` (severity high), routed like any incident (routes
matching on severity, cluster, or ``rules: [desired-state-unreadable]`` reach it; one
matching namespaces does not). The same problem reported again (every poll, a restart)
sends nothing; a different one (another broken file, or fetch failing after a bad
commit) sends ``updated``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from driftwatch.desired import DesiredStateError
from driftwatch.desired._process import redact_url
from driftwatch.notify.pipeline import Pipeline
from driftwatch.policy import PolicyKey
from driftwatch.rules import Direction, Finding, Severity

__all__ = [
    "DESIRED_STATE_NAME",
    "DESIRED_STATE_UNREADABLE",
    "FETCH_FAILURES",
    "FETCH_GRACE",
    "DesiredHealth",
    "desired_state_key",
]

DESIRED_STATE_UNREADABLE = "desired-state-unreadable"
"""The rule id of the desired-state incident's finding (not a NetworkPolicy rule, so not in
``driftwatch rules``; routes may name it)."""
DESIRED_STATE_NAME = "desired-state"
"""The name part of :func:`desired_state_key`."""
FETCH_FAILURES = 3
"""Consecutive failed fetches that open the incident (a broken commit opens it at once)."""
FETCH_GRACE = 300.0
"""Seconds of failing fetches that open the incident even before :data:`FETCH_FAILURES`
(with a long ``poll_interval``)."""
SEVERITY = Severity.HIGH

Log = Any  # a structlog BoundLogger


def desired_state_key(cluster: str) -> PolicyKey:
    """The reserved key of ``cluster``'s desired-state incident: ``<cluster>//desired-state``
    (incident ids ``<cluster>//desired-state#<n>``)."""
    return PolicyKey(cluster, "", DESIRED_STATE_NAME)


class DesiredHealth:
    """``daemon.on_desired = DesiredHealth(pipeline, cluster=..., url=...)``: opens, updates
    and resolves the desired-state incident from the outcome of every Git fetch.

    ``recording``: whether this replica records incidents now (with leader election, only
    the leader does; default always). ``clock``: monotonic seconds, for :data:`FETCH_GRACE`.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        cluster: str,
        url: str,
        failures: int = FETCH_FAILURES,
        grace: float = FETCH_GRACE,
        recording: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        log: Log = None,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.pipeline = pipeline
        self.key = desired_state_key(cluster)
        self.url = redact_url(url)
        self.failures = failures
        self.grace = grace
        self._recording = recording
        self._clock = clock
        self._log = log if log is not None else structlog.get_logger("driftwatch.daemon")
        self.failed_fetches = 0
        """Consecutive failed fetches so far (0 after a success)."""
        self._failing_since: float | None = None

    async def __call__(self, commit: str | None, error: DesiredStateError | None) -> None:
        """The daemon's ``on_desired``: ``(commit, None)`` after a good fetch and read,
        ``(None, error)`` after a failed fetch, ``(commit, error)`` after a commit that
        could not be read."""
        if error is None:
            self.failed_fetches, self._failing_since = 0, None
            if self._recording():
                reason = f"the desired state at commit {commit} was read" if commit else "read"
                await self.pipeline.resolve_problem(self.key, reason=reason)
            return
        if commit is None:
            await self._fetch_failed(error)
            return
        self.failed_fetches, self._failing_since = 0, None
        finding = Finding(
            DESIRED_STATE_UNREADABLE,
            SEVERITY,
            Direction.HYGIENE,
            error.message,
            {"commit": commit},
        )
        if self._recording():
            await self.pipeline.open_problem(
                self.key,
                status="unreadable",
                findings=[finding],
                reason=f"commit {commit} cannot be read; the last good desired state is kept",
            )

    async def _fetch_failed(self, error: DesiredStateError) -> None:
        now = self._clock()
        self.failed_fetches += 1
        if self._failing_since is None:
            self._failing_since = now
        lasting = now - self._failing_since
        if self.failed_fetches < self.failures and lasting < self.grace:
            self._log.warning(
                "Git fetch failed; an incident opens if it keeps failing",
                failed_fetches=self.failed_fetches,
                opens_after=self.failures,
            )
            return
        finding = Finding(
            DESIRED_STATE_UNREADABLE,
            SEVERITY,
            Direction.HYGIENE,
            f"cannot fetch {self.url}",
            {"error": error.message, "failed_fetches": self.failed_fetches},
        )
        if self._recording():
            await self.pipeline.open_problem(
                self.key,
                status="unreachable",
                findings=[finding],
                reason=f"{error.message} ({self.failed_fetches} fetches failed in a row, "
                f"for {lasting:.0f}s); the last good desired state is kept",
            )
