"""A flaky Kubernetes API server misses no incident and opens none twice (issue #7, API).

The daemon runs in process (watcher, drift engine, incident store, outbox, HTTP server) with
a :class:`ScriptedReceiver` as its only receiver, against the sandbox API server over
loopback. The sandbox's fault switches cut watch streams, force 410 Gone, refuse every
connection, answer 500 or answer late, while the test changes NetworkPolicies through the
sandbox's own write path (its store: the faults act on HTTP only, as a cluster's other
clients keep writing while one watcher is cut off).

Ground truth (:class:`Truth`): changes are made in *rounds*, each touching a key at most
once; after a round the test waits until the daemon caught up. So every state a key takes
is a round's end state, and comparing each round's end states with Git
(:func:`driftwatch.drift.compare_all`, the daemon's rules and ignores) gives the exact drift
episodes: each must be one incident, opened once (and delivered once), resolved once when it
ends. ``lost``: episodes the daemon never opened; ``duplicates``: incidents or deliveries
beyond them. ``/readyz`` is read over HTTP throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.run import Daemon, DaemonTuning
from driftwatch.daemon.testing import start_until_ready
from driftwatch.desired import load_path
from driftwatch.drift import compare_all
from driftwatch.incidents import SqliteStore
from driftwatch.live import Backoff, WatchOptions
from driftwatch.notify.outbox import Backoff as OutboxBackoff
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.policy import parse_policy
from driftwatch.rules import RuleEngine
from driftwatch.sandbox import Sandbox
from driftwatch.settings import Settings
from tests.faults_support import Figures, bounded, poll_until, quiet_log
from tests.test_daemon_faults import EXTRA_KEYS, MANAGERS, git_manifests, mutate, unmanaged

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples" / "policies"
NP = ("networking.k8s.io/v1", "NetworkPolicy")

CUT_EVERY = 0.5
CUT_FOR = 30.0
EXPIRIES = 10
API_DOWN = 10.0
ERRORS_FOR = 6.0
SLOW_FOR = 6.0
SLOW_BY = 1.0
"""Seconds every NetworkPolicy request is answered late during ``SLOW_FOR``."""
GRACE = 2.0
"""``DaemonTuning.disconnected_grace``: a disconnection shorter than this is not reported."""
CATCH_UP = 15.0
"""Longest wait for the daemon to reflect a round once the API answers again."""

TUNING = DaemonTuning(
    grace=2.0,
    watch=WatchOptions(read_timeout=5.0, server_timeout=30.0, request_timeout=5.0),
    backoff=Backoff(initial=0.05, maximum=0.5),
    disconnected_grace=GRACE,
)

Key = tuple[str, str]
Obj = dict[str, Any]


def key_of(incident_id: str) -> Key:
    """``cluster/namespace/name#n`` -> (namespace, name)."""
    _, namespace, rest = incident_id.split("/", 2)
    return namespace, rest.rsplit("#", 1)[0]


class Truth:
    """The changes made and the drift episodes they imply (see the module docstring)."""

    def __init__(self, sandbox: Sandbox, settings: Settings, seed: int) -> None:
        self.sandbox = sandbox
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data
        self.cluster = settings.cluster.name
        self.engine = RuleEngine(settings.rules.to_options())
        self.ignore = settings.ignore.to_rules()
        self.desired = load_path(EXAMPLES).policies
        self.git = git_manifests()
        self.keys: list[Key] = sorted(self.git) + list(EXTRA_KEYS)
        self.changes = 0
        self.rounds = 0
        self.open: set[Key] = self.drifted()
        assert not self.open, "the seeded cluster matches Git"
        self.opened: Counter[Key] = Counter()
        self.resolved: Counter[Key] = Counter()

    def live(self) -> dict[Key, Obj]:
        return {
            (o["metadata"]["namespace"], o["metadata"]["name"]): o
            for o in self.sandbox.list_objects(*NP)
        }

    def drifted(self) -> set[Key]:
        """The keys whose live state differs from Git now (brute force)."""
        live = {k: parse_policy(o) for k, o in self.live().items()}
        report = compare_all(
            self.desired, live, self.engine, cluster=self.cluster, ignore=self.ignore
        )
        return {(d.key.namespace, d.key.name) for d in report.drifts}

    def change(self, key: Key) -> None:
        """One realistic write to ``key``: drift it, drift it further, fix it, delete it."""
        rng, live = self.rng, self.live()
        manager = rng.choice(MANAGERS)
        if key not in self.git:  # unknown to Git: create it, or delete it
            if key in live:
                self.sandbox.delete_object(*NP, key[1], key[0], manager=manager)
            else:
                self.sandbox.put_object(unmanaged(rng, key), manager=manager)
        elif key not in live:
            body = self.git[key] if rng.random() < 0.6 else mutate(rng, self.git[key])
            self.sandbox.put_object(body, manager=manager)
        elif key in self.open and rng.random() < 0.6:
            self.sandbox.put_object(self.git[key], manager="argocd")
        elif rng.random() < 0.2:
            self.sandbox.delete_object(*NP, key[1], key[0], manager=manager)
        else:
            self.sandbox.put_object(mutate(rng, live[key]), manager=manager)
        self.changes += 1

    def round(self, size: int | None = None) -> None:
        """Change ``size`` distinct keys (random if None), then record the episodes."""
        n = size if size is not None else self.rng.randint(1, 4)
        for key in self.rng.sample(self.keys, n):
            self.change(key)
        self.rounds += 1
        now = self.drifted()
        self.opened.update(now - self.open)
        self.resolved.update(self.open - now)
        self.open = now

    @property
    def episodes(self) -> int:
        return sum(self.opened.values())


@dataclass
class Rig:
    sandbox: Sandbox
    daemon: Daemon
    receiver: ScriptedReceiver
    truth: Truth
    url: str
    session: aiohttp.ClientSession
    not_ready: list[str] = field(default_factory=list)
    """Reasons of every 503 seen by :meth:`readyz`."""

    async def readyz(self) -> tuple[int, list[str]]:
        async with self.session.get(f"{self.url}/readyz") as response:
            body = await response.json()
            if response.status != 200:
                self.not_ready.extend(body["reasons"])
            return response.status, list(body["reasons"])

    async def in_step(self) -> bool:
        """The daemon reflects the cluster: the watcher holds every object at its version
        and the store's open incidents are the truth's."""
        watcher = self.daemon.watcher
        if watcher is None:
            return False
        view = {
            k: p.origin.resource_version if p.origin else "" for k, p in watcher.policies.items()
        }
        server = {k: o["metadata"]["resourceVersion"] for k, o in self.truth.live().items()}
        if view != server or self.daemon.tracker.pending:
            return False
        assert self.daemon.notifications is not None
        incidents = await self.daemon.notifications.store.open_incidents()
        return {(i.key.namespace, i.key.name) for i in incidents} == self.truth.open

    async def caught_up(self, timeout: float = CATCH_UP) -> float:
        return await poll_until(
            self.in_step, lambda: f"the daemon to reflect round {self.truth.rounds}", timeout
        )

    async def final_check(self, figures: Figures) -> None:
        """Every episode one incident, opened and delivered once, resolved once if over."""
        await self.caught_up()
        assert self.daemon.notifications is not None
        store = self.daemon.notifications.store
        await poll_until(
            lambda: _empty(store), "the outbox to be delivered", CATCH_UP, interval=0.05
        )
        history = await store.history(limit=100_000)
        incidents: dict[Key, int] = Counter((i.key.namespace, i.key.name) for i in history)
        delivered: dict[str, list[str]] = defaultdict(list)
        for n in self.receiver.delivered:
            delivered[n.incident_id].append(str(n.kind))
        opened = Counter(key_of(i) for i, kinds in delivered.items() if "opened" in kinds)
        resolved = Counter(key_of(i) for i, kinds in delivered.items() if "resolved" in kinds)
        truth = self.truth
        lost = sum((truth.opened - opened).values()) + sum((truth.opened - incidents).values())
        duplicates = (
            sum((opened - truth.opened).values())
            + sum((incidents - truth.opened).values())
            + sum((resolved - truth.resolved).values())
            + sum(k.count("opened") - 1 for k in delivered.values() if k.count("opened") > 1)
            + sum(k.count("resolved") - 1 for k in delivered.values() if k.count("resolved") > 1)
        )
        unresolved = sum((truth.resolved - resolved).values())
        problems = [
            f"{key}: episodes {truth.opened[key]}, incidents {incidents.get(key, 0)},"
            f" opened delivered {opened[key]}, resolved {truth.resolved[key]}/{resolved[key]}"
            for key in sorted(set(truth.opened) | set(incidents) | set(opened))
            if (truth.opened[key], truth.resolved[key]) != (incidents.get(key, 0), resolved[key])
            or truth.opened[key] != opened[key]
        ]
        for kinds in delivered.values():
            assert kinds[0] == "opened", kinds
            assert "opened" not in kinds[1:], kinds
            assert "resolved" not in kinds[:-1], kinds
        assert (lost, duplicates, unresolved) == (0, 0, 0), problems
        assert truth.episodes > 0, "the changes must have opened incidents"
        figures.add(
            changes=truth.changes,
            rounds=truth.rounds,
            incidents_expected=truth.episodes,
            resolved_expected=sum(truth.resolved.values()),
            notifications=len(self.receiver.delivered),
            lost=lost,
            duplicates=duplicates,
        )


async def _empty(store: Any) -> bool:
    return bool(await store.pending_count() == 0)


@contextlib.asynccontextmanager
async def daemon_rig(tmp_path: Path, seed: int) -> AsyncIterator[Rig]:
    """The sandbox with the examples, the daemon watching it with the examples as Git."""
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        settings = Settings.model_validate(
            {
                "cluster": {"name": "test", "kubeconfig": str(sandbox.kubeconfig_path(tmp_path))},
                "desired": {"path": str(EXAMPLES)},
                "server": {"listen": "127.0.0.1:0"},
            }
        )
        receiver = ScriptedReceiver("truth")
        log = quiet_log()
        store = await SqliteStore(tmp_path / "state.db").open()
        notifications = await Notifications.open(
            settings, log=log, receivers={"truth": receiver}, store=store
        )
        notifications.outbox.backoff = OutboxBackoff(initial=0.05, factor=2.0, maximum=1.0)
        daemon = Daemon(settings, notifiers=[], tuning=TUNING, notifications=notifications, log=log)
        task = await start_until_ready(daemon, timeout=20)
        try:
            assert daemon.server is not None
            await poll_until(lambda: bool(daemon.server and daemon.server.addresses), "HTTP", 5)
            async with aiohttp.ClientSession() as session:
                the_rig = Rig(
                    sandbox, daemon, receiver, Truth(sandbox, settings, seed),
                    daemon.server.url, session,
                )  # fmt: skip
                status, reasons = await the_rig.readyz()
                assert (status, reasons) == (200, [])
                yield the_rig
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)
            await notifications.close()


@bounded(CUT_FOR + 40)
async def test_watch_cut_every_half_second_for_30_s(tmp_path: Path) -> None:
    """Every open watch is cut every ``CUT_EVERY`` s (alternately clean and abrupt) for
    ``CUT_FOR`` s while rounds of changes go on: every drift episode is one incident,
    opened once, resolved once; ``/readyz`` stays 200 (each cut is resumed within the
    grace)."""
    async with daemon_rig(tmp_path, seed=1) as rig:
        cuts = 0

        async def cutter() -> None:
            nonlocal cuts
            while True:
                await asyncio.sleep(CUT_EVERY)
                if rig.sandbox.faults.cut_watches(abrupt=cuts % 2 == 1):
                    cuts += 1

        started = time.monotonic()
        task = asyncio.create_task(cutter())
        samples = 0
        try:
            while time.monotonic() - started < CUT_FOR:
                rig.truth.round()
                await rig.caught_up()
                await rig.readyz()
                samples += 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        figures = Figures("api-watch-cuts").add(faults=f"{cuts}xcut", seconds=CUT_FOR)
        await rig.final_check(figures)
        watcher = rig.daemon.watcher
        assert watcher is not None
        assert cuts >= CUT_FOR / CUT_EVERY * 0.8
        assert rig.not_ready == [], "a cut resumed at once is not a readiness problem"
        figures.add(readyz_samples=samples, readyz_503=len(rig.not_ready)).show()


@bounded(60)
async def test_forced_410s_relist_without_loss_or_duplicate(tmp_path: Path) -> None:
    """``EXPIRIES`` times: the watch is cut and refused, a round of changes is made, the
    history is compacted, the API answers again; the watcher gets 410 Gone, relists, and
    the relist's differences are each key's one change of the round."""
    async with daemon_rig(tmp_path, seed=2) as rig:
        watcher = rig.daemon.watcher
        assert watcher is not None
        faults = rig.sandbox.faults
        for _ in range(EXPIRIES):
            await rig.sandbox.wait_for_watchers(1, resource="networkpolicies")
            faults.refuse(match="networkpolicies")
            faults.cut_watches(abrupt=True)
            rig.truth.round(size=rig.truth.rng.randint(2, 5))
            faults.compact()
            faults.clear()
            await rig.caught_up()
        figures = Figures("api-410").add(faults=f"{EXPIRIES}x410")
        await rig.final_check(figures)
        assert watcher.stats.relists == EXPIRIES
        assert watcher.stats.restarts["expired"] == EXPIRIES
        figures.add(relists=watcher.stats.relists).show()


@bounded(API_DOWN + 40)
async def test_api_down_10_s_readyz_503_then_200_nothing_missed(tmp_path: Path) -> None:
    """The API server goes away for ``API_DOWN`` s (open watches dropped, every connection
    refused, the history lost as after a restart) while the cluster keeps changing:
    ``/readyz`` answers 503 naming the lost connection once the grace is over, 200 again
    soon after the API is back, and the changes made meanwhile become incidents once."""
    async with daemon_rig(tmp_path, seed=3) as rig:
        for _ in range(3):
            rig.truth.round()
            await rig.caught_up()
        faults = rig.sandbox.faults
        down = time.monotonic()
        faults.restart(downtime=API_DOWN)

        async def not_ready() -> bool:
            status, reasons = await rig.readyz()
            return status == 503 and any("Kubernetes API server" in r for r in reasons)

        degraded = await poll_until(not_ready, "/readyz to say 503", API_DOWN - 1)
        assert degraded >= GRACE - 0.1, "reported before the grace was over"
        # The cluster changes while the daemon cannot see it (one round: a key written
        # twice unseen would be an episode nobody could see).
        rig.truth.round(size=5)
        await asyncio.sleep(max(0.0, down + API_DOWN - 0.5 - time.monotonic()))  # the fault
        status, reasons = await rig.readyz()
        assert status == 503, "still down: still not ready"

        async def ready() -> bool:
            return (await rig.readyz())[0] == 200

        await poll_until(ready, "/readyz to say 200 again", CATCH_UP)
        back = time.monotonic() - down - API_DOWN
        await rig.caught_up()
        recovered = time.monotonic() - down - API_DOWN
        for _ in range(3):
            rig.truth.round()
            await rig.caught_up()
        figures = Figures("api-down").add(faults=f"down {API_DOWN:.0f}s (restart)")
        await rig.final_check(figures)
        figures.add(
            readyz_503_after_s=degraded,
            readyz_200_after_back_s=back,
            caught_up_after_back_s=recovered,
            readyz_reason=repr(reasons[0]),
        ).show()


@bounded(ERRORS_FOR + 40)
async def test_500s_for_a_while(tmp_path: Path) -> None:
    """Every NetworkPolicy request is answered 500 for ``ERRORS_FOR`` s (and the open
    watch dropped, so the watcher has to come through them): changes made meanwhile are
    seen once it gets through, ``/readyz`` is 503 during and 200 after."""
    async with daemon_rig(tmp_path, seed=4) as rig:
        rig.truth.round()
        await rig.caught_up()
        faults = rig.sandbox.faults
        start = time.monotonic()
        faults.fail(status=500, duration=ERRORS_FOR, match="networkpolicies")
        faults.cut_watches(abrupt=True)

        async def not_ready() -> bool:
            return (await rig.readyz())[0] == 503

        degraded = await poll_until(not_ready, "/readyz to say 503", ERRORS_FOR - 1)
        rig.truth.round(size=4)
        watcher = rig.daemon.watcher
        assert watcher is not None

        async def ready() -> bool:
            return (await rig.readyz())[0] == 200

        await poll_until(ready, "/readyz to say 200 again", ERRORS_FOR + CATCH_UP)
        await rig.caught_up()
        after = time.monotonic() - start - ERRORS_FOR
        rig.truth.round()
        await rig.caught_up()
        figures = Figures("api-500s").add(
            faults=f"500s for {ERRORS_FOR:.0f}s",
            server_errors=watcher.stats.restarts["server_error"],
        )
        await rig.final_check(figures)
        assert watcher.stats.restarts["server_error"] > 0
        figures.add(readyz_503_after_s=degraded, caught_up_after_s=after).show()


@bounded(SLOW_FOR + 40)
async def test_slow_responses(tmp_path: Path) -> None:
    """Every NetworkPolicy request is answered ``SLOW_BY`` s late for ``SLOW_FOR`` s,
    while watches are cut every second (each reconnection is slow) and rounds of changes
    go on: nothing is missed or doubled; the watcher is slow, not disconnected for long,
    so ``/readyz`` does not flap."""
    async with daemon_rig(tmp_path, seed=5) as rig:
        faults = rig.sandbox.faults
        faults.delay(SLOW_BY, duration=SLOW_FOR, match="networkpolicies")
        start = time.monotonic()
        cuts = 0
        while time.monotonic() - start < SLOW_FOR:
            if faults.cut_watches():
                cuts += 1
            rig.truth.round()
            await rig.caught_up()
            await rig.readyz()
        figures = Figures("api-slow").add(faults=f"+{SLOW_BY}s for {SLOW_FOR:.0f}s, {cuts}xcut")
        await rig.final_check(figures)
        assert cuts > 1
        assert rig.not_ready == [], "slow answers within the grace are not a readiness problem"
        figures.add(readyz_503=len(rig.not_ready)).show()
