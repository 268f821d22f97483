"""Benchmark: classifying one modified pair of large policies (the per-drift cost of the rules).

Run: python -m benchmarks.bench_classify [--iterations N] [--cpu N] [--profile]
     [--profile-iterations N]

The desired policy has 10 ingress rules x 10 peers (pod selectors, namespace selectors,
both, ipBlocks with excepts; three ports per rule, one a range) and two egress rules; each
live copy differs by one change. Every iteration classifies fresh objects: the pair is
parsed anew beforehand (outside the timing) and the model's caches of views, rules, port set
operations and peer texts (``driftwatch.semantic.model.clear_caches``) are cleared, so nothing
analysed for an earlier iteration helps (the caches of canonical selectors, CIDRs and port
texts stay warm: they hold small values that recur across any cluster's policies). Timed,
per iteration, with ``time.perf_counter_ns`` on one pinned core:
``driftwatch.drift.compare(key, desired, live, engine)`` end to end, cold; the same with Git
known (``Git known``: what the daemon does for a live change: Git's policy is one object
parsed when Git was loaded, and its view, built and prepared beforehand, untimed, is cached;
the live rules equal to Git's are then looked up by their text, the changed one is analysed,
and the change set is computed from the rules that differ); ``prepare()`` of Git's view
(what the first change of a key pays once on top, building Git's lookups); and the cold parts
separately: ``view_of()`` of both sides, ``changes()``, the rules (``engine.evaluate`` with the
change set given), and the rest of ``compare`` (the ``==`` status check and the unified diff,
which ``compare`` itself leaves until it is read). Goal: median <= 200 us for ``compare``.

``--profile`` also runs cProfile over the whole ``compare`` loop and prints the hotspots.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import os
import pstats
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from driftwatch.drift import compare, status_of, unified_diff
from driftwatch.policy import NetworkPolicy, PolicyKey, parse_policy
from driftwatch.rules import RuleContext, RuleEngine, Status
from driftwatch.semantic import changes, view_of
from driftwatch.semantic.model import clear_caches

RULES, PEERS = 10, 10
NAMESPACE = "shop"


def _peer(r: int, p: int) -> dict[str, Any]:
    kind = p % 4
    if kind == 0:
        return {"podSelector": {"matchLabels": {"app": f"client-{r}-{p}", "tier": "backend"}}}
    if kind == 1:
        return {"namespaceSelector": {"matchLabels": {"team": f"team-{r}-{p}"}}}
    if kind == 2:
        return {
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                ]
            },
            "podSelector": {
                "matchLabels": {"role": f"worker-{r}-{p}"},
                "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}],
            },
        }
    return {"ipBlock": {"cidr": f"10.{r}.{p * 16}.0/20", "except": [f"10.{r}.{p * 16}.0/28"]}}


def desired_object() -> dict[str, Any]:
    ingress = [
        {
            "from": [_peer(r, p) for p in range(PEERS)],
            "ports": [
                {"protocol": "TCP", "port": 8000 + r},
                {"protocol": "UDP", "port": 5000 + r},
                {"protocol": "TCP", "port": 9000 + 10 * r, "endPort": 9005 + 10 * r},
            ],
        }
        for r in range(RULES)
    ]
    egress = [
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                    },
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"to": [{"ipBlock": {"cidr": "172.16.0.0/12"}}], "ports": [{"port": 5432}]},
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "big", "namespace": NAMESPACE, "labels": {"team": "payments"}},
        "spec": {
            "podSelector": {"matchLabels": {"app": "payments"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def broadened(obj: dict[str, Any]) -> dict[str, Any]:
    """One pod peer's selector loses a label (matches more) and its rule gains TCP 443."""
    out = copy.deepcopy(obj)
    rule = out["spec"]["ingress"][3]
    del rule["from"][4]["podSelector"]["matchLabels"]["tier"]
    rule["ports"].append({"protocol": "TCP", "port": 443})
    return out


def world_peer(obj: dict[str, Any]) -> dict[str, Any]:
    """A 0.0.0.0/0 peer added to one rule."""
    out = copy.deepcopy(obj)
    out["spec"]["ingress"][5]["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}})
    return out


def cidr_split(obj: dict[str, Any]) -> dict[str, Any]:
    """Cosmetic: one ipBlock written as its two halves (same addresses)."""
    out = copy.deepcopy(obj)
    peers = out["spec"]["ingress"][2]["from"]
    block = peers[3]["ipBlock"]  # 10.2.48.0/20 except 10.2.48.0/28
    peers[3] = {"ipBlock": {"cidr": "10.2.48.0/21", "except": block["except"]}}
    peers.append({"ipBlock": {"cidr": "10.2.56.0/21"}})
    return out


VARIANTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "peer broadened + port added": broadened,
    "0.0.0.0/0 peer added": world_peer,
    "cosmetic (CIDR split)": cidr_split,
}


def _pin(cpu: int | None) -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpus = sorted(os.sched_getaffinity(0))
    chosen = cpu if cpu is not None else cpus[-1]
    os.sched_setaffinity(0, {chosen})
    return f"pinned to CPU {chosen}"


def _stats(samples_ns: list[int]) -> tuple[float, float, float]:
    """Median, p95 and mean in microseconds."""
    ordered = sorted(samples_ns)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered) / 1e3, p95 / 1e3, statistics.fmean(ordered) / 1e3


def _pairs(
    desired: dict[str, Any], live: dict[str, Any], n: int
) -> Iterator[tuple[NetworkPolicy, NetworkPolicy]]:
    """``n`` freshly parsed (desired, live) pairs, one at a time, with the model cache
    cleared: equal values, distinct objects, nothing left over from the previous pair."""
    for _ in range(n):
        pair = parse_policy(desired), parse_policy(live)
        clear_caches()
        yield pair


def _steady_pairs(
    desired: dict[str, Any], live: dict[str, Any], n: int
) -> Iterator[tuple[NetworkPolicy, NetworkPolicy]]:
    """As the daemon sees a change: Git's policy was parsed and analysed when Git was loaded
    (one object for the whole run; its view built and prepared, untimed, after the caches
    are cleared), the live one arrives freshly parsed; the rules it shares with Git are
    known, the changed one is not."""
    git = parse_policy(desired)
    for _ in range(n):
        lv = parse_policy(live)
        clear_caches()
        view_of(git).prepare()
        yield git, lv


def measure(
    desired: dict[str, Any], live: dict[str, Any], iterations: int, engine: RuleEngine
) -> dict[str, list[int]]:
    key = PolicyKey("default", NAMESPACE, "big")
    samples: dict[str, list[int]] = {
        "compare()": [],
        "compare(), Git known": [],
        "prepare() of Git's view": [],
        "view_of() x2": [],
        "changes()": [],
        "rules": [],
        "status + diff": [],
    }
    clock = time.perf_counter_ns
    # Warm up imports, regexes and the small string caches of the renderer.
    for d, lv in _pairs(desired, live, 20):
        compare(key, d, lv, engine)

    gc.collect()
    for d, lv in _pairs(desired, live, iterations):
        t0 = clock()
        drift = compare(key, d, lv, engine)
        samples["compare()"].append(clock() - t0)
        assert drift.status is Status.MODIFIED

    gc.collect()
    for d, _ in _pairs(desired, live, iterations):
        view = view_of(d)
        t0 = clock()
        view.prepare()
        samples["prepare() of Git's view"].append(clock() - t0)

    gc.collect()
    for d, lv in _steady_pairs(desired, live, iterations):
        t0 = clock()
        compare(key, d, lv, engine)
        samples["compare(), Git known"].append(clock() - t0)

    gc.collect()
    for d, lv in _pairs(desired, live, iterations):
        t0 = clock()
        vd, vl = view_of(d), view_of(lv)
        t1 = clock()
        cs = changes(vd, vl)
        t2 = clock()
        engine.evaluate(RuleContext(key, Status.MODIFIED, d, lv, cs))
        t3 = clock()
        status_of(d, lv)
        unified_diff(d, lv)
        t4 = clock()
        samples["view_of() x2"].append(t1 - t0)
        samples["changes()"].append(t2 - t1)
        samples["rules"].append(t3 - t2)
        samples["status + diff"].append(t4 - t3)
    return samples


def profile(desired: dict[str, Any], live: dict[str, Any], iterations: int) -> None:
    key = PolicyKey("default", NAMESPACE, "big")
    engine = RuleEngine()
    prof = cProfile.Profile()
    for d, lv in _pairs(desired, live, iterations):
        prof.enable()
        compare(key, d, lv, engine)
        prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: last)")
    parser.add_argument("--profile", action="store_true", help="also profile with cProfile")
    parser.add_argument("--profile-iterations", type=int, default=50)
    args = parser.parse_args()
    pinned = _pin(args.cpu)
    desired = desired_object()
    engine = RuleEngine()
    probe = parse_policy(desired)
    print(
        f"classify one modified pair: {RULES} ingress rules x {PEERS} peers + 2 egress rules; "
        f"{args.iterations} iterations per figure, fresh objects, view and rule caches cleared; "
        f"{pinned}"
    )
    print(f"(desired: {sum(len(r.peers) for r in probe.spec.ingress)} ingress peers)")
    for name, change in VARIANTS.items():
        live = change(desired)
        samples = measure(desired, live, args.iterations, engine)
        d, lv = next(_pairs(desired, live, 1))
        drift = compare(PolicyKey("default", NAMESPACE, "big"), d, lv, engine)
        rules = sorted({f.rule for f in drift.findings})
        print()
        print(f"live: {name}  ->  severity {drift.severity}, findings: {', '.join(rules)}")
        print(f"  {'phase':<24} {'median us':>10} {'p95 us':>10} {'mean us':>10}")
        for phase, values in samples.items():
            med, p95, mean = _stats(values)
            print(f"  {phase:<24} {med:>10.1f} {p95:>10.1f} {mean:>10.1f}")
        for figure in ("compare()", "compare(), Git known"):
            med = _stats(samples[figure])[0]
            verdict = "meets" if med <= 200 else "misses"
            print(f"  goal: median {figure} <= 200 us: {verdict} ({med:.1f} us)")
    if args.profile:
        for name, change in VARIANTS.items():
            print(f"\n=== cProfile, live: {name} ({args.profile_iterations} iterations) ===")
            profile(desired, change(desired), args.profile_iterations)


if __name__ == "__main__":
    main()
