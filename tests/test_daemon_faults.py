"""The daemon under a flaky API server (issue #4): 1,000 random changes with 100 forced watch
cuts and 10 forced 410s end with the daemon's view equal to the server's and an event log
with no duplicate and no missed transition; a sandbox restart is survived the same way.

The test keeps its own ledger of the cluster (:class:`Ledger`): every write it makes, checked
against the server's change log, and what the daemon can see of each key. The watcher sees
every write made while it is connected, one by one and in order; writes made while it is
disconnected and the history is compacted reach it only as the end state of each key (the
relist after 410 Gone coalesces them). A reference model folds those observed states through
:func:`driftwatch.drift.compare` with the transitions the tracker documents (opened, updated
when the status or findings change, resolved) and gives the exact expected event sequence of
every key.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import os
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import RecordingNotifier
from driftwatch.desired import load_path
from driftwatch.drift import Drift, DriftEvent, EventKind, IgnoreRules, compare, compare_all
from driftwatch.live import PolicyWatcher
from driftwatch.policy import NetworkPolicy, PolicyError, PolicyKey, parse_policy
from driftwatch.rules import RuleEngine
from driftwatch.sandbox import Sandbox
from driftwatch.settings import Settings
from tests.test_daemon import EXAMPLES, NP, running, settings_for, without_topology

Key = tuple[str, str]
Obj = dict[str, Any]
Summary = tuple[str, str, str | None, frozenset[str]]
"""What an event is compared by: kind, status, severity and the set of rule ids."""

CHANGE_TYPES = ("ADDED", "MODIFIED", "DELETED")
MANAGERS = ("kubectl-edit", "kubectl-patch", "helm", "kubectl-client-side-apply", "argocd")
EXTRA_KEYS: tuple[Key, ...] = (
    ("shop", "debug-allow-all"),
    ("payments", "tmp-egress"),
    ("monitoring", "grafana-ingress"),
    ("scratch", "rogue"),  # a namespace Git does not know: created by the first write
)


def bounded(seconds: float) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., None]]:
    """Run an async test under ``asyncio.run``, failing after ``seconds``."""

    def wrap(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout=seconds))

        return run

    return wrap


def git_manifests() -> dict[Key, Obj]:
    """The example policies as written in Git, by key."""
    out: dict[Key, Obj] = {}
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
    return out


def summary(kind: EventKind | str, drift: Drift) -> Summary:
    severity = None if drift.severity is None else str(drift.severity)
    return (str(kind), str(drift.status), severity, frozenset(f.rule for f in drift.findings))


def by_key(events: list[DriftEvent]) -> dict[Key, list[Summary]]:
    out: dict[Key, list[Summary]] = defaultdict(list)
    for event in events:
        out[(event.key.namespace, event.key.name)].append(summary(event.kind, event.drift))
    return dict(out)


def assert_same_events(got: dict[Key, list[Summary]], want: dict[Key, list[Summary]]) -> None:
    """Per key, the daemon's events are the model's: say where the first difference is."""
    for key in sorted(got.keys() | want.keys()):
        mine, model = got.get(key, []), want.get(key, [])
        if mine != model:
            at = next(
                (i for i, (a, b) in enumerate(zip(mine, model, strict=False)) if a != b),
                min(len(mine), len(model)),
            )
            raise AssertionError(
                f"{key[0]}/{key[1]}: the daemon sent {len(mine)} events, the model expects"
                f" {len(model)}; first difference at #{at}:\n"
                f"  daemon: {mine[at : at + 3]}\n  model:  {model[at : at + 3]}"
            )


# ---------------------------------------------------------------------------------------------
# Random changes


def _peer_rule(rng: random.Random, egress: bool) -> Obj:
    cidrs = ["0.0.0.0/0", "0.0.0.0/0", "10.0.0.0/8", "198.51.100.0/24"]
    if egress:
        cidrs.append("169.254.0.0/16")
    rule: Obj = {("to" if egress else "from"): [{"ipBlock": {"cidr": rng.choice(cidrs)}}]}
    if rng.random() < 0.5:
        rule["ports"] = [{"port": rng.choice([22, 443, 5432, 8080])}]
    return rule


def _add_peer(rng: random.Random, spec: Obj) -> None:
    egress = spec.get("policyTypes") == ["Egress"] or (
        "Egress" in (spec.get("policyTypes") or []) and rng.random() < 0.5
    )
    spec.setdefault("egress" if egress else "ingress", []).append(_peer_rule(rng, egress))


def _rules(spec: Obj) -> list[tuple[str, int, Obj]]:
    return [(d, i, r) for d in ("ingress", "egress") for i, r in enumerate(spec.get(d) or [])]


def _peers(spec: Obj) -> list[Obj]:
    return [p for _, _, r in _rules(spec) for p in (r.get("from") or r.get("to") or [])]


def mutate(rng: random.Random, body: Obj) -> Obj:
    """``body`` with one realistic hand edit: a wider peer (often the world), another port, a
    rule dropped, a selector narrowed or broadened, or a label changed. Always valid."""
    out = copy.deepcopy(body)
    spec = out.setdefault("spec", {})
    how = rng.choice(["peer", "peer", "port", "drop", "narrow", "broaden", "label"])
    rules = _rules(spec)
    if how == "port" and any(r.get("ports") for _, _, r in rules):
        ports = rng.choice([r["ports"] for _, _, r in rules if r.get("ports")])
        port = rng.choice(ports)
        port["port"] = rng.choice([22, 80, 443, 5432, 8080, 8443, 9000])
        if "endPort" in port and port["endPort"] < port["port"]:
            del port["endPort"]
    elif how == "drop" and rules:
        direction, index, _ = rng.choice(rules)
        del spec[direction][index]
    elif how == "narrow":
        peers = [p for p in _peers(spec) if "podSelector" in p]
        selector = rng.choice(peers)["podSelector"] if peers and rng.random() < 0.5 else None
        if selector is None:
            selector = spec.setdefault("podSelector", {})
        labels = selector.get("matchLabels") or {}
        selector["matchLabels"] = {**labels, "track": rng.choice(["canary", "stable"])}
    elif how == "broaden":
        peers = [p for p in _peers(spec) if "podSelector" in p or "namespaceSelector" in p]
        if peers and rng.random() < 0.6:
            peer = rng.choice(peers)
            field = "namespaceSelector" if "namespaceSelector" in peer else "podSelector"
            peer[field] = {}
        else:
            spec["podSelector"] = {}
    elif how == "label":
        labels = out["metadata"].setdefault("labels", {})
        labels["edited-by"] = rng.choice(["oncall", "script"])
    else:
        _add_peer(rng, spec)
    try:
        parse_policy(out)
    except PolicyError:  # e.g. a port moved above its endPort: fall back to a wider peer
        out = copy.deepcopy(body)
        _add_peer(rng, out.setdefault("spec", {}))
    return out


def unmanaged(rng: random.Random, key: Key) -> Obj:
    """A policy Git does not have: sometimes harmless, often an allow-from-anywhere."""
    spec: Obj = {"podSelector": {"matchLabels": {"app": rng.choice(["debug", "frontend"])}}}
    if rng.random() < 0.3:
        spec["podSelector"] = {}
    _add_peer(rng, spec)
    return {
        "apiVersion": NP[0],
        "kind": NP[1],
        "metadata": {"name": key[1], "namespace": key[0]},
        "spec": spec,
    }


# ---------------------------------------------------------------------------------------------
# The ledger and the reference model


class Ledger:
    """What the test did to the cluster, what the daemon could see of it, and therefore the
    events the daemon must send (computed as the changes are made)."""

    def __init__(self, sandbox: Sandbox, settings: Settings) -> None:
        self.sandbox = sandbox
        self.cluster = settings.cluster.name
        self.engine = RuleEngine(settings.rules.to_options())
        self.ignore: IgnoreRules = settings.ignore.to_rules()
        self.desired = load_path(EXAMPLES).policies
        self.git = git_manifests()
        self.bodies: dict[Key, Obj] = dict(self.git)
        """The manifest last written per present key."""
        self.live: dict[Key, NetworkPolicy] = {}
        self.versions: dict[Key, str] = {}
        for obj in sandbox.list_objects(*NP):
            policy = parse_policy(obj)
            key = (policy.namespace, policy.name)
            self.live[key] = policy
            self.versions[key] = obj["metadata"]["resourceVersion"]
        assert set(self.live) == set(self.git) == set(self.desired)
        self.start = sandbox.store.revision
        self.writes: list[tuple[str, str, str, str, str]] = []
        """(type, namespace, name, resourceVersion, manager) of every stored write."""
        self.streamed = 0
        """Writes the watcher sees one by one (those not hidden in a relist window)."""
        self.windows = 0
        self.window: set[Key] | None = None
        self.open: dict[Key, Drift] = {}
        self.expected: list[tuple[Key, Summary]] = []

    # --- writes -------------------------------------------------------------------------

    def put(self, body: Obj, manager: str) -> bool:
        """Write ``body``; False when the server stored nothing (it was already so)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        before = self.sandbox.store.revision
        existed = key in self.live
        stored = self.sandbox.put_object(body, manager=manager)
        self.bodies[key] = copy.deepcopy(body)
        rv = stored["metadata"]["resourceVersion"]
        if int(rv) <= before:
            return False
        self.versions[key] = rv
        self.writes.append(("MODIFIED" if existed else "ADDED", *key, rv, manager))
        self._changed(key, parse_policy(stored))
        return True

    def delete(self, key: Key, manager: str) -> bool:
        if not self.sandbox.delete_object(*NP, key[1], key[0], manager=manager):
            return False
        self.writes.append(("DELETED", *key, self.sandbox.resource_version, manager))
        self.versions.pop(key)
        self.bodies.pop(key, None)
        self._changed(key, None)
        return True

    def _changed(self, key: Key, policy: NetworkPolicy | None) -> None:
        if policy is None:
            self.live.pop(key, None)
        else:
            self.live[key] = policy
        if self.window is not None:
            self.window.add(key)
        else:
            self.streamed += 1
            self._observed(key, policy)

    # --- relist windows -----------------------------------------------------------------

    def begin_window(self) -> None:
        assert self.window is None
        self.window = set()

    def end_window(self) -> None:
        """The watcher is about to relist: it sees the end state of every key in the window."""
        assert self.window, "a window must hold at least one stored change to force a 410"
        for key in sorted(self.window):
            self._observed(key, self.live.get(key))
        self.window = None
        self.windows += 1

    # --- the reference model ------------------------------------------------------------

    def _observed(self, key: Key, have: NetworkPolicy | None) -> None:
        """The daemon evaluates ``key`` with this live state: the transition it makes."""
        want = self.desired.get(key)
        policy_key = PolicyKey(self.cluster, *key)
        before = self.open.get(key)
        if (
            (want is None and have is None)
            or (want is not None and want == have)
            or self.ignore.ignores(policy_key, want, have)
        ):
            if before is not None:
                del self.open[key]
                self.expected.append((key, summary(EventKind.RESOLVED, before)))
            return
        drift = compare(policy_key, want, have, self.engine)
        self.open[key] = drift
        if before is None:
            self.expected.append((key, summary(EventKind.OPENED, drift)))
        elif before.status is not drift.status or before.findings != drift.findings:
            self.expected.append((key, summary(EventKind.UPDATED, drift)))

    def expected_by_key(self) -> dict[Key, list[Summary]]:
        out: dict[Key, list[Summary]] = defaultdict(list)
        for key, item in self.expected:
            out[key].append(item)
        return dict(out)

    # --- checks -------------------------------------------------------------------------

    def server_view(self) -> dict[Key, NetworkPolicy]:
        return {
            (o["metadata"]["namespace"], o["metadata"]["name"]): parse_policy(o)
            for o in self.sandbox.list_objects(*NP)
        }

    def check_change_log(self) -> None:
        """Every write the test made is in the server's change log, in order, and nothing
        else touched a NetworkPolicy; the server holds what the ledger says."""
        log = [
            (c.type, c.namespace, c.name, c.resource_version, c.manager)
            for c in self.sandbox.changes
            if c.resource == "networkpolicies" and int(c.resource_version) > self.start
        ]
        assert log == self.writes
        assert self.server_view() == self.live
        versions = {
            (o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
            for o in self.sandbox.list_objects(*NP)
        }
        assert versions == self.versions


def _received(watcher: PolicyWatcher) -> int:
    return sum(watcher.stats.received[t] for t in CHANGE_TYPES)


def _view_versions(watcher: PolicyWatcher) -> dict[Key, str]:
    return {
        key: (p.origin.resource_version if p.origin else None) or ""
        for key, p in watcher.policies.items()
    }


async def caught_up(ledger: Ledger, daemon: Daemon, timeout: float = 10.0) -> None:
    """Wait until the watcher has received every streamed write (no more: a duplicate
    fails at once), made every relist, and holds the server's objects at their versions."""
    watcher = daemon.watcher
    assert watcher is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        received = _received(watcher)
        assert received <= ledger.streamed, (
            f"the watcher received {received} changes; {ledger.streamed} were made while it"
            " was connected: one came twice"
        )
        assert watcher.stats.relists <= ledger.windows
        if (
            received == ledger.streamed
            and watcher.stats.relists == ledger.windows
            and _view_versions(watcher) == ledger.versions
        ):
            return
        if loop.time() > deadline:
            raise AssertionError(
                f"the watcher did not catch up: received {received}/{ledger.streamed},"
                f" relists {watcher.stats.relists}/{ledger.windows}, stats {watcher.stats}"
            )
        await asyncio.sleep(0.002)


async def events_match(ledger: Ledger, rec: RecordingNotifier, timeout: float = 10.0) -> None:
    """Wait for the events the model expects so far, then compare them key by key."""
    want = len(ledger.expected)
    with contextlib.suppress(TimeoutError):  # the comparison below says what is missing
        await rec.wait_until(lambda events: len(events) >= want, timeout=timeout)
    assert_same_events(by_key(rec.events), ledger.expected_by_key())
    assert [e.sequence for e in rec.events] == list(range(1, len(rec.events) + 1))


async def disconnect(sandbox: Sandbox, daemon: Daemon) -> None:
    """Cut the watch (abruptly) and refuse new ones until ``faults.clear()``; return once
    the watcher noticed. The watch must be open: a reconnect in flight could slip through."""
    watcher = daemon.watcher
    assert watcher is not None
    await sandbox.wait_for_watchers(1, resource="networkpolicies")
    before = sum(watcher.stats.restarts.values())
    sandbox.faults.refuse(match="networkpolicies")
    assert sandbox.faults.cut_watches(abrupt=True) == 1
    for _ in range(2000):
        if sum(watcher.stats.restarts.values()) > before:
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the watcher did not notice the cut")


def final_checks(ledger: Ledger, daemon: Daemon, rec: RecordingNotifier) -> None:
    watcher = daemon.watcher
    assert watcher is not None
    ledger.check_change_log()
    server = ledger.server_view()
    assert dict(watcher.policies) == server
    assert _view_versions(watcher) == ledger.versions
    # What the tracker compares with (no public accessor: the drift engine's own copy).
    assert dict(daemon.tracker._live) == server
    # The open drifts are exactly those of a brute-force comparison of the final states.
    report = compare_all(
        ledger.desired, server, ledger.engine, cluster=ledger.cluster, ignore=ledger.ignore
    )
    brute = {d.key: summary("open", d) for d in report.drifts}
    assert {k: summary("open", d) for k, d in daemon.tracker.open.items()} == brute
    assert {k: summary("open", d) for k, d in ledger.open.items()} == {
        (k.namespace, k.name): s for k, s in brute.items()
    }
    assert_same_events(by_key(rec.events), ledger.expected_by_key())
    seen = [(e.key, e.sequence) for e in rec.events]
    assert len(seen) == len(set(seen))


# ---------------------------------------------------------------------------------------------
# The run


def random_change(rng: random.Random, ledger: Ledger) -> bool:
    """One change from a realistic mix; False if the server stored nothing."""
    manager = rng.choice(MANAGERS)
    if rng.random() < 0.12:
        key = rng.choice(EXTRA_KEYS)
        if key not in ledger.live:
            return ledger.put(unmanaged(rng, key), manager)
        roll = rng.random()
        if roll < 0.45:
            return ledger.put(mutate(rng, ledger.bodies[key]), manager)
        if roll < 0.75:
            return ledger.delete(key, manager)
        return ledger.put(unmanaged(rng, key), manager)
    key = rng.choice(sorted(ledger.git))
    git = ledger.git[key]
    roll = rng.random()
    if key not in ledger.live:  # re-create: as Git has it, or already edited
        return ledger.put(git if roll < 0.7 else mutate(rng, git), manager)
    if roll < 0.45:  # edit Git's version, or stack an edit on the live one
        base = git if rng.random() < 0.6 else ledger.bodies[key]
        return ledger.put(mutate(rng, base), manager)
    if roll < 0.68:  # write it back exactly as Git has it
        return ledger.put(git, rng.choice(["kubectl-client-side-apply", "argocd"]))
    if roll < 0.8:
        return ledger.delete(key, manager)
    # Metadata only: the same content, another last-applied annotation and maybe manager.
    body = copy.deepcopy(ledger.bodies[key])
    annotations = body["metadata"].setdefault("annotations", {})
    stamp = json.dumps({"n": len(ledger.writes)})
    annotations["kubectl.kubernetes.io/last-applied-configuration"] = stamp
    return ledger.put(body, manager)


CHANGES = 1000
CUTS = 100
EXPIRIES = 10


@pytest.mark.slow
@bounded(150)
async def test_1000_changes_100_cuts_10_expiries_view_and_events_exact(tmp_path: Path) -> None:
    seed = int(os.environ.get("DRIFTWATCH_FAULTS_SEED", "20261127"))  # to try other runs
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    # Positions (by number of stored changes so far) of the cuts and of the relist windows.
    cut_at = sorted(rng.sample(range(1, CHANGES), CUTS), reverse=True)
    window_at = sorted(rng.sample(range(20, CHANGES - 20, 10), EXPIRIES), reverse=True)
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.05) as sandbox:
        settings = without_topology(  # disconnect() counts the open watches
            settings_for(sandbox.kubeconfig_path(tmp_path), {"path": str(EXAMPLES)})
        )
        ledger = Ledger(sandbox, settings)
        async with running(settings) as (daemon, rec):
            assert rec.events == [], "the seeded cluster matches Git"
            watcher = daemon.watcher
            assert watcher is not None
            await caught_up(ledger, daemon)
            cuts = windows = points = 0
            abrupt_cuts = 0
            while len(ledger.writes) < CHANGES:
                done = len(ledger.writes)
                if window_at and done >= window_at[-1]:
                    window_at.pop()
                    await caught_up(ledger, daemon)
                    await events_match(ledger, rec)
                    await disconnect(sandbox, daemon)
                    ledger.begin_window()
                    for _ in range(rng.randint(2, 6)):
                        while not random_change(rng, ledger):
                            pass
                        await asyncio.sleep(rng.choice([0, 0.01, 0.03]))
                    sandbox.faults.compact()
                    ledger.end_window()
                    sandbox.faults.clear()
                    windows += 1
                    await caught_up(ledger, daemon)
                    await events_match(ledger, rec)
                    continue
                if cut_at and done >= cut_at[-1]:
                    cut_at.pop()
                    await sandbox.wait_for_watchers(1, resource="networkpolicies")
                    abrupt = rng.random() < 0.4
                    assert sandbox.faults.cut_watches(abrupt=abrupt) == 1
                    cuts += 1
                    abrupt_cuts += abrupt
                random_change(rng, ledger)
                if rng.random() < 0.4:  # an observation point; else changes pile up
                    await caught_up(ledger, daemon)
                    await events_match(ledger, rec)
                    points += 1
                elif rng.random() < 0.5:
                    await asyncio.sleep(0)
            await caught_up(ledger, daemon)
            await events_match(ledger, rec)
            await asyncio.sleep(0.3)  # anything extra (a late duplicate) would arrive now
            final_checks(ledger, daemon, rec)

            stats = watcher.stats
            print(
                f"events {len(rec.events)} {Counter(e.kind for e in rec.events)}; {points}"
                f" observation points; {abrupt_cuts} abrupt cuts; stats {stats}"
            )
            assert (cuts, windows) == (CUTS, EXPIRIES)
            assert len(ledger.writes) == CHANGES
            assert stats.relists == EXPIRIES
            assert stats.restarts["expired"] == EXPIRIES
            assert stats.restarts["closed"] + stats.restarts["disconnected"] >= CUTS + EXPIRIES
            assert stats.lists == 1 + EXPIRIES
            kinds = {e.kind for e in rec.events}
            assert kinds == set(EventKind), "the mix must open, update and resolve drifts"
            assert len(rec.events) > 300
            assert points > 200
            assert abrupt_cuts > 20


@bounded(60)
async def test_a_sandbox_restart_is_survived_without_loss_or_duplicate(tmp_path: Path) -> None:
    """Two restarts: one while the watcher is up to date (the history is gone, but its
    resume point is not older than it: the changes made during the downtime are replayed one
    by one), one while it is already disconnected and behind (410, relist)."""
    rng = random.Random(7)  # noqa: S311 - reproducible test data
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.05) as sandbox:
        settings = without_topology(  # disconnect() counts the open watches
            settings_for(sandbox.kubeconfig_path(tmp_path), {"path": str(EXAMPLES)})
        )
        ledger = Ledger(sandbox, settings)
        async with running(settings) as (daemon, rec):
            watcher = daemon.watcher
            assert watcher is not None
            for _ in range(5):
                random_change(rng, ledger)
            await caught_up(ledger, daemon)
            await events_match(ledger, rec)

            before = len(rec.events)
            sandbox.faults.restart(downtime=0.3)
            frontend = mutate(rng, ledger.git[("shop", "frontend-allow-from-ingress")])
            ledger.put(frontend, "kubectl-edit")
            await asyncio.sleep(0.1)
            ledger.delete(("shop", "default-deny"), "kubectl") or ledger.put(
                ledger.git[("shop", "default-deny")], "argocd"
            )
            await asyncio.sleep(0.1)
            for _ in range(5):
                random_change(rng, ledger)
            await caught_up(ledger, daemon)
            await events_match(ledger, rec)
            assert watcher.stats.relists == 0
            assert len(rec.events) > before

            await disconnect(sandbox, daemon)
            ledger.begin_window()
            for _ in range(6):
                while not random_change(rng, ledger):
                    pass
                await asyncio.sleep(0.02)
            sandbox.faults.clear()
            sandbox.faults.restart(downtime=0.3)
            ledger.end_window()
            await caught_up(ledger, daemon)
            await events_match(ledger, rec)
            await asyncio.sleep(0.3)
            final_checks(ledger, daemon, rec)
            assert sandbox.faults.restarts == 2
            assert watcher.stats.relists == 1
            assert watcher.stats.restarts["expired"] == 1
