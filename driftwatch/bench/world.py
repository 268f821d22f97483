"""The generated world: policies in Git and in the cluster, and the changes to apply.

Deterministic for a seed. Every policy is in Git; the cluster holds the same, except that 1%
of them have a changed port from the start (initial drifts, each opening an incident). The
change plan is a realistic mix, each change with the one incident event it must produce
(the ground truth) or none:

===============  ==========================================  ===================
change           write                                       event
===============  ==========================================  ===================
``world``        PUT: ingress from ``0.0.0.0/0`` added       opened
``all-ns``       PUT: ingress from ``namespaceSelector: {}``  opened
``port``         PUT: a port changed                         opened
``delete``       DELETE                                      opened (missing)
``escalate``     PUT: an open drift also exposed to 0/0      updated
``revert``       PUT: the drifted policy written back as Git  resolved
``recreate``     POST: the deleted policy created again       resolved
``touch``        PUT: only ``last-applied-configuration``    nothing
===============  ==========================================  ===================

(A ``touch`` is what a re-``apply`` with other formatting does: the object changes, a watch
event goes out, but nothing driftwatch compares.) A key is not changed again within
``gap`` changes of its last one, so each change's event is its own.
"""

from __future__ import annotations

import copy
import enum
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's when PyYAML has it

__all__ = [
    "LAST_APPLIED",
    "Change",
    "ChangePlanner",
    "Expected",
    "World",
    "generate_policy",
    "make_world",
]

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
WORLD_RULE: Obj = {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
ALL_NAMESPACES_RULE: Obj = {"from": [{"namespaceSelector": {}}]}
NP_COLLECTION = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
INITIAL_DRIFT_EVERY = 100
"""One policy in this many is drifted in the cluster from the start."""


def generate_policy(rng: random.Random, ns: str, i: int, rules: int = 2, peers: int = 2) -> Obj:
    """A typical NetworkPolicy: two ingress rules of pod/namespace peers and two ports each,
    one egress rule to an ``ipBlock`` with an ``except`` (as ``benchmarks/generate.py``)."""
    ingress = []
    for r in range(rules):
        ingress.append(
            {
                "from": [
                    {"podSelector": {"matchLabels": {"app": f"client-{rng.randrange(50)}"}}}
                    if p % 2 == 0
                    else {
                        "namespaceSelector": {
                            "matchLabels": {
                                "kubernetes.io/metadata.name": f"ns-{rng.randrange(20)}"
                            }
                        },
                        "podSelector": {"matchLabels": {"role": f"r{r}{p}"}},
                    }
                    for p in range(peers)
                ],
                "ports": [{"port": 8000 + rng.randrange(1000)}, {"protocol": "UDP", "port": 53}],
            }
        )
    app = f"app-{i}"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{app}-policy", "namespace": ns, "labels": {"team": f"t{i % 7}"}},
        "spec": {
            "podSelector": {"matchLabels": {"app": app}},
            "ingress": ingress,
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
        },
    }


class Kind(enum.StrEnum):
    """A key's state in the cluster, as the plan sees it."""

    SYNC = "sync"
    DRIFT = "drift"
    """The spec differs from Git (an incident is open)."""
    EXPOSED = "exposed"
    """Drifted and open to 0.0.0.0/0 (cannot be escalated further)."""
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Expected:
    """One incident event a change must produce: ``incident`` is the incident id
    (``cluster/ns/name#n``), ``kind`` ``opened``, ``updated`` or ``resolved``."""

    incident: str
    kind: str


@dataclass(frozen=True, slots=True)
class Change:
    """One API write and its ground truth."""

    op: str
    method: str
    path: str
    body: bytes | None
    expected: Expected | None


@dataclass
class _Key:
    git: Obj
    live: Obj
    state: Kind
    number: int = 0
    """Incidents opened so far for this key."""
    touched: int = -(10**9)


@dataclass
class World:
    """Git and the cluster at the start; the initial incidents."""

    desired: dict[str, list[Obj]]
    live: list[Obj]
    initial: list[Expected]
    cluster: str
    keys: dict[tuple[str, str], _Key] = field(repr=False, default_factory=dict)

    def write(self, root: Path) -> tuple[Path, Path]:
        """``root/desired/<ns>.yaml`` (block-style YAML, as people write manifests) and
        ``root/live.json``."""
        directory = root / "desired"
        directory.mkdir(parents=True, exist_ok=True)
        for ns, items in self.desired.items():
            text = yaml.dump_all(
                items, Dumper=_DUMPER, sort_keys=False, explicit_start=True, width=200
            )
            (directory / f"{ns}.yaml").write_text(text)
        live = root / "live.json"
        live.write_text(json.dumps(self.live))
        return directory, live


def make_world(policies: int, namespaces: int, *, seed: int, cluster: str) -> World:
    """``policies`` policies over ``ns-0`` .. ``ns-{namespaces-1}``; 1% drifted live."""
    rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
    desired: dict[str, list[Obj]] = {}
    live: list[Obj] = []
    initial: list[Expected] = []
    keys: dict[tuple[str, str], _Key] = {}
    for i in range(policies):
        ns = f"ns-{i % namespaces}"
        obj = generate_policy(rng, ns, i)
        desired.setdefault(ns, []).append(obj)
        served = copy.deepcopy(obj)
        key = _Key(obj, served, Kind.SYNC)
        if i % INITIAL_DRIFT_EVERY == INITIAL_DRIFT_EVERY // 2:
            served["spec"]["ingress"][0]["ports"][0]["port"] = 9999
            key.state, key.number = Kind.DRIFT, 1
            initial.append(Expected(_incident(cluster, obj, 1), "opened"))
        live.append(served)
        keys[(ns, obj["metadata"]["name"])] = key
    return World(desired, live, initial, cluster, keys)


def _incident(cluster: str, obj: Obj, number: int) -> str:
    meta = obj["metadata"]
    return f"{cluster}/{meta['namespace']}/{meta['name']}#{number}"


def _path(obj: Obj, *, item: bool = True) -> str:
    meta = obj["metadata"]
    base = NP_COLLECTION.format(ns=meta["namespace"])
    return f"{base}/{meta['name']}" if item else base


# (op, the weight of choosing it)
_MIX = (
    ("world", 14),
    ("all-ns", 8),
    ("port", 8),
    ("delete", 8),
    ("touch", 15),
    ("escalate", 8),
    ("revert", 27),
    ("recreate", 12),
)
_FROM = {
    "world": (Kind.SYNC,),
    "all-ns": (Kind.SYNC,),
    "port": (Kind.SYNC,),
    "delete": (Kind.SYNC,),
    "touch": (Kind.SYNC,),
    "escalate": (Kind.DRIFT,),
    "revert": (Kind.DRIFT, Kind.EXPOSED),
    "recreate": (Kind.GONE,),
}


class ChangePlanner:
    """Draws changes from ``world``'s keys, tracking each key's state; call
    :meth:`changes` for the next ``count`` (the state carries over between calls)."""

    def __init__(self, world: World, *, seed: int, gap: int) -> None:
        self._world = world
        self._rng = random.Random(seed + 1)  # noqa: S311 - reproducible data
        self._gap = gap
        self._index = 0
        self._pools: dict[Kind, list[_Key]] = {k: [] for k in Kind}
        for key in world.keys.values():
            self._pools[key.state].append(key)
        self._touches = 0

    def changes(self, count: int) -> list[Change]:
        return list(self._iter(count))

    def _iter(self, count: int) -> Iterator[Change]:
        ops = [op for op, _ in _MIX]
        weights = [w for _, w in _MIX]
        produced = 0
        while produced < count:
            op = self._rng.choices(ops, weights)[0]
            # The last change of a batch makes an event (its processing time is then seen).
            if produced == count - 1 and op == "touch":
                continue
            key = self._pick(_FROM[op])
            if key is None:
                continue
            yield self._apply(op, key)
            produced += 1

    def _pick(self, states: tuple[Kind, ...]) -> _Key | None:
        for _ in range(8):
            state = self._rng.choice(states)
            pool = self._pools[state]
            if not pool:
                continue
            i = self._rng.randrange(len(pool))
            key = pool[i]
            if self._index - key.touched >= self._gap:
                pool[i] = pool[-1]
                pool.pop()
                return key
        return None

    def _move(self, key: _Key, state: Kind) -> None:
        key.state = state
        key.touched = self._index
        self._index += 1
        self._pools[state].append(key)

    def _apply(self, op: str, key: _Key) -> Change:
        cluster = self._world.cluster
        git = key.git
        if op in ("world", "all-ns", "port"):
            live = copy.deepcopy(git)
            if op == "world":
                live["spec"]["ingress"].append(WORLD_RULE)
            elif op == "all-ns":
                live["spec"]["ingress"].append(ALL_NAMESPACES_RULE)
            else:
                live["spec"]["ingress"][0]["ports"][0]["port"] = 9000 + self._index % 999
            key.live, key.number = live, key.number + 1
            self._move(key, Kind.EXPOSED if op == "world" else Kind.DRIFT)
            expected = Expected(_incident(cluster, git, key.number), "opened")
            return Change(op, "PUT", _path(git), _body(live), expected)
        if op == "delete":
            key.number += 1
            self._move(key, Kind.GONE)
            expected = Expected(_incident(cluster, git, key.number), "opened")
            return Change(op, "DELETE", _path(git), None, expected)
        if op == "touch":
            self._touches += 1
            live = copy.deepcopy(key.live)
            note = {"bench": self._touches, **git}
            live["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(note)
            key.live = live
            self._move(key, key.state)
            return Change(op, "PUT", _path(git), _body(live), None)
        if op == "escalate":
            live = copy.deepcopy(key.live)
            live["spec"]["ingress"].append(WORLD_RULE)
            key.live = live
            self._move(key, Kind.EXPOSED)
            expected = Expected(_incident(cluster, git, key.number), "updated")
            return Change(op, "PUT", _path(git), _body(live), expected)
        # revert, recreate: back to Git
        key.live = copy.deepcopy(git)
        self._move(key, Kind.SYNC)
        expected = Expected(_incident(cluster, git, key.number), "resolved")
        if op == "recreate":
            return Change(op, "POST", _path(git, item=False), _body(git), expected)
        return Change(op, "PUT", _path(git), _body(git), expected)


def _body(obj: Obj) -> bytes:
    return json.dumps(obj).encode()
