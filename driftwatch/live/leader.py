"""Leader election on a ``coordination.k8s.io/v1`` Lease: of several driftwatch replicas,
exactly one leads (notifies); the others keep their caches warm and take over when the
leader's lease runs out.

The election follows client-go's rules (holder, ``renewTime``, ``leaseDurationSeconds``,
``leaseTransitions``; optimistic concurrency on the Lease's resourceVersion), written here
on :class:`CoordinationV1Api` rather than through ``kubernetes_asyncio.leaderelection``,
whose loop (36.1) cannot be used safely: a connection error escapes ``run()`` without
cancelling the leader's task or calling ``onstopped_leading`` (so a leader cut off from the
API server does not step down), no request has a timeout (a hung renewal keeps a leader
past its lease), its Config refuses sub-second periods, it writes local time marked ``Z``
and drops the times of a timestamp with zero microseconds, and ``run()`` returns after the
first loss. Here:

* a follower tries every ``retry_period`` (with jitter); it takes a Lease that is free,
  released, or not renewed for ``leaseDurationSeconds`` since it last saw it change (its own
  clock, never the holder's);
* the leader renews every ``retry_period``; every attempt is bounded by the time left, and
  it steps down as soon as ``renew_deadline`` has passed since the start of its last
  successful renewal (before any follower may take over: ``renew_deadline`` <
  ``lease_duration``), or at once when it sees another holder; then it campaigns again;
* :attr:`LeaderElector.is_leader` is also false past that deadline, whatever the loop is
  doing; a stopped (cancelled) leader first stops leading, then releases the Lease (holder
  emptied), so a follower takes over within a ``retry_period`` instead of a lease duration.

Times in the Lease are ``MicroTime`` (``2026-11-27T12:00:00.000000Z``, UTC).
RBAC: ``get``, ``create`` and ``update`` on ``leases.coordination.k8s.io`` in the namespace.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio.client import ApiClient, CoordinationV1Api
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["LeaderElector", "LeaseTiming", "default_identity", "micro_time"]

Obj = dict[str, Any]
Callback = Callable[[], Awaitable[None]]
JITTER = 1.2
"""client-go's jitter factor: a follower waits ``retry_period`` to this many times it."""


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How long a lease lasts, how long its holder keeps trying to renew it, and how often
    anyone tries (seconds; client-go's defaults)."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        for name in ("lease_duration", "renew_deadline", "retry_period"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if self.renew_deadline <= self.retry_period:
            raise ValueError("renew_deadline must be greater than retry_period")

    @property
    def lease_seconds(self) -> int:
        """``leaseDurationSeconds`` as written (whole seconds, rounded up)."""
        return math.ceil(self.lease_duration)


def default_identity() -> str:
    """``$POD_NAME`` (set from the downward API), else ``<hostname>-<pid>``."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def micro_time(at: datetime | None = None) -> str:
    """A ``MicroTime`` as the API server writes it: UTC, six digits, ``Z``."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for the Lease ``namespace/name`` as ``identity`` for as long as
    :meth:`run` runs (cancel it to stop). ``on_started_leading`` / ``on_stopped_leading``
    are awaited on every change: keep them short, the Lease is not renewed meanwhile (do
    lasting work, such as reloading a store and delivering, in :meth:`while_leading`); an
    exception from one ends :meth:`run`, after the Lease is released. :meth:`wait_leader`,
    :meth:`wait_follower` and :attr:`is_leader` are the other ways to follow the state."""

    def __init__(
        self,
        api: ApiClient,
        name: str,
        namespace: str,
        *,
        identity: str | None = None,
        timing: LeaseTiming | None = None,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        release_on_stop: bool = True,
        clock: Callable[[], float] = time.monotonic,
        log: Any = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.timing = timing or LeaseTiming()
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.release_on_stop = release_on_stop
        self.terms = 0
        """How many times this elector started leading."""
        self._api: Any = CoordinationV1Api(api)
        self._serialize = api.sanitize_for_serialization
        self._clock = clock
        self._log = log if log is not None else structlog.get_logger("driftwatch.live")
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self._leading = asyncio.Event()
        self._following = asyncio.Event()
        self._following.set()
        self._renewed_at = -math.inf
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = -math.inf
        self._holder: str | None = None
        self._last_error = ""

    # --- state ----------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Leading, and within ``renew_deadline`` of the last successful renewal."""
        deadline = self._renewed_at + self.timing.renew_deadline
        return self._leading.is_set() and self._clock() < deadline

    @property
    def leader(self) -> str | None:
        """The holder this elector last saw in the Lease (None: none seen yet or free)."""
        return self._holder or None

    async def wait_leader(self) -> None:
        await self._leading.wait()

    async def wait_follower(self) -> None:
        await self._following.wait()

    async def while_leading(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work()`` during every term: started when this elector starts leading,
        cancelled as soon as it stops. Runs beside :meth:`run`; returns only when
        cancelled, or raises what ``work`` raised."""
        while True:
            await self._leading.wait()
            task = asyncio.ensure_future(work())
            stopped = asyncio.ensure_future(self._following.wait())
            try:
                await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error
                await self._following.wait()  # work ended by itself: wait for the next term

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign, lead until the lease is lost, campaign again; until cancelled."""
        try:
            while True:
                await self._campaign()
                await self._start_leading()
                await self._hold()
                await self._stop_leading("lost the lease")
        finally:
            if self._leading.is_set():
                try:
                    await self._stop_leading("stopping")
                finally:
                    if self.release_on_stop:
                        await self._release()

    async def _campaign(self) -> None:
        period = self.timing.retry_period
        while not await self._try(self._clock()):
            await asyncio.sleep(self._rng.uniform(period, period * JITTER))

    async def _hold(self) -> None:
        """Renew until ``renew_deadline`` passes without a successful renewal."""
        period = self.timing.retry_period
        while True:
            await asyncio.sleep(period)
            while True:
                left = self._renewed_at + self.timing.renew_deadline - self._clock()
                if left <= 0:
                    return
                try:
                    async with asyncio.timeout(left):
                        renewed = await self._try(self._clock())
                except TimeoutError:
                    renewed = False
                if renewed:
                    break
                if self._holder not in (None, "", self.identity):
                    return  # someone else holds it: stop now, not at the deadline
                left = self._renewed_at + self.timing.renew_deadline - self._clock()
                await asyncio.sleep(max(0.0, min(period, left)))

    async def _start_leading(self) -> None:
        self.terms += 1
        self._following.clear()
        self._leading.set()
        self._log.info("started leading", lease=self._where(), identity=self.identity)
        if self.on_started_leading is not None:
            await self.on_started_leading()

    async def _stop_leading(self, why: str) -> None:
        self._leading.clear()
        self._following.set()
        self._log.warning("stopped leading", lease=self._where(), identity=self.identity, why=why)
        if self.on_stopped_leading is not None:
            await self.on_stopped_leading()

    # --- the Lease ------------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _failed(self, what: str, error: BaseException) -> None:
        said = f"{error.status} {error.reason}" if isinstance(error, ApiException) else repr(error)
        text = f"{what} the Lease {self._where()} failed: {said}"
        if text != self._last_error:  # once per kind of failure, not every retry period
            self._last_error = text
            self._log.warning("leader election request failed", error=text)

    async def _try(self, started: float) -> bool:
        """One attempt to acquire or renew the Lease; True when this elector holds it now."""
        timeout = self.timing.renew_deadline
        try:
            lease = await self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout
            )
        except ApiException as e:
            if e.status != 404:
                self._failed("reading", e)
                return False
            return await self._create(started)
        except (aiohttp.ClientError, TimeoutError) as e:
            self._failed("reading", e)
            return False
        spec = lease.spec
        holder = (spec.holder_identity if spec else None) or ""
        seen = (
            holder,
            spec.renew_time if spec else None,
            spec.acquire_time if spec else None,
            spec.lease_duration_seconds if spec else None,
            spec.lease_transitions if spec else None,
        )
        now = self._clock()
        if seen != self._observed:
            if holder != self._holder and holder:
                self._log.info("leader observed", lease=self._where(), leader=holder)
            self._observed, self._observed_at, self._holder = seen, now, holder
        duration = (spec.lease_duration_seconds if spec else None) or self.timing.lease_seconds
        if holder not in ("", self.identity) and now < self._observed_at + duration:
            return False
        return await self._update(lease, holder, started)

    def _spec(self, *, acquired: str | None, transitions: int) -> Obj:
        now = micro_time()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.timing.lease_seconds,
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def _create(self, started: float) -> bool:
        spec = self._spec(acquired=None, transitions=0)
        body: Obj = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        try:
            await self._api.create_namespaced_lease(
                self.namespace, body, _request_timeout=self.timing.renew_deadline
            )
        except ApiException as e:
            if e.status != 409:  # 409: a rival created it first
                self._failed("creating", e)
            return False
        except (aiohttp.ClientError, TimeoutError) as e:
            self._failed("creating", e)
            return False
        return self._held(started)

    async def _update(self, lease: Any, holder: str, started: float) -> bool:
        body: Obj = self._serialize(lease)
        old = body.get("spec") or {}
        mine = holder == self.identity
        spec = {
            **old,
            **self._spec(
                acquired=micro_time(lease.spec.acquire_time)
                if mine and lease.spec.acquire_time
                else None,
                transitions=int(old.get("leaseTransitions") or 0) + (0 if mine else 1),
            ),
        }
        body["spec"] = spec
        try:
            await self._api.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=self.timing.renew_deadline
            )
        except ApiException as e:
            if e.status != 409:  # 409: a rival wrote first; the next attempt reads it
                self._failed("updating", e)
            return False
        except (aiohttp.ClientError, TimeoutError) as e:
            self._failed("updating", e)
            return False
        return self._held(started)

    def _held(self, started: float) -> bool:
        if self._last_error:
            self._log.info("leader election requests succeed again", lease=self._where())
            self._last_error = ""
        self._renewed_at = started
        self._holder = self.identity
        self._observed, self._observed_at = None, self._clock()
        return True

    async def _release(self) -> None:
        """Empty the holder (if still this elector), so a follower need not wait."""
        timeout = self.timing.retry_period
        try:
            async with asyncio.timeout(timeout):
                lease = await self._api.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=timeout
                )
                if lease.spec is None or lease.spec.holder_identity != self.identity:
                    return
                body: Obj = self._serialize(lease)
                now = micro_time()
                body["spec"].update(
                    holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now
                )
                await self._api.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=timeout
                )
        except Exception as e:  # best effort, on the way out (a closed client...)
            self._failed("releasing", e)
            return
        self._renewed_at = -math.inf
        self._log.info("released the lease", lease=self._where(), identity=self.identity)
