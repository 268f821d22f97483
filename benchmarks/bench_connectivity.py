"""Benchmark: `driftwatch connectivity diff` on the reference cases and on a large cluster.

Run: python -m benchmarks.bench_connectivity [--repeat N] [--synthetic-repeat N]
     [--workloads N] [--policies N] [--changes N] [--seed N] [--keep DIR] [--profile]

(a) For each line of ``tests/data/netpol-analyzer/pairs.tsv``: the median time (of
``--repeat`` runs, default 5) of loading both directories, building both
``Connectivity``, ``connectivity_diff`` and rendering as txt, all in-process; and whether
that txt equals the expected file as a set of lines (the ``Connectivity diff:`` header
aside), as netpol-analyzer's outputs are compared.

(b) A synthetic cluster, generated deterministically from ``--seed``: 25 labelled
namespaces (teams x environments, ``kube-system`` and ``monitoring``), 500 workloads
(Deployments, StatefulSets, DaemonSets with ``app``/``tier``/``team`` labels and container
ports, named ones included) and 1,000 NetworkPolicies (default-deny and DNS egress per
namespace, allow-from-namespace, allow-from-app on numeric, named and ranged ports,
ipBlocks with ``except``, egress to databases and to the Internet), written as manifests
into a temporary directory, and a second state with ``--changes`` (50) of those policies
changed (exposures, port changes, deletions, egress opened). Prints the in-process median
(of ``--synthetic-repeat``, default 3) of the whole command (load + Connectivity + diff +
render) with the phases split, the pairs found, and the time of ``connection_list`` for the
first state. Goal (the issue): the synthetic diff under 10 s. ``--profile`` prints
cProfile's top functions of one diff.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import pstats
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from driftwatch.connectivity import Connectivity, connection_list, connectivity_diff, render_diff
from driftwatch.desired.cluster_dir import load_cluster_dir

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "netpol-analyzer"
HEADER = "Connectivity diff:"

try:
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]


# --- (a) the reference cases ---------------------------------------------------------------


def pairs() -> list[tuple[str, str, str]]:
    """``(ref1, ref2, expected file)`` for each line of pairs.tsv."""
    rows = []
    for line in (CORPUS / "pairs.tsv").read_text().splitlines():
        if line.strip():
            ref1, ref2, expected = line.split("\t")
            rows.append((ref1, ref2, expected))
    return rows


def diff_lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and line != HEADER}


def txt_diff(ref1: Path, ref2: Path) -> str:
    """The whole of ``driftwatch connectivity diff REF1 REF2``, in-process."""
    one, two = load_cluster_dir(ref1), load_cluster_dir(ref2)
    diffs = connectivity_diff(
        Connectivity(one.topology, one.policies), Connectivity(two.topology, two.policies)
    )
    return render_diff(diffs, "txt", ref1=str(ref1), ref2=str(ref2))


def bench_corpus(repeat: int) -> None:
    print(f"(a) reference cases (load + diff + render, median of {repeat}):")
    rows = pairs()
    matches = 0
    total = 0.0
    for ref1, ref2, expected in rows:
        times = []
        out = ""
        for _ in range(repeat):
            start = time.perf_counter()
            out = txt_diff(CORPUS / "cases" / ref1, CORPUS / "cases" / ref2)
            times.append(time.perf_counter() - start)
        want = diff_lines((CORPUS / expected).read_text())
        got = diff_lines(out)
        same = got == want
        matches += same
        median = statistics.median(times)
        total += median
        verdict = "match" if same else f"DIFFER (+{len(got - want)} -{len(want - got)} lines)"
        print(f"  {median * 1000:7.1f} ms  {len(got):3d} lines  {verdict:8s}  {ref1} -> {ref2}")
    print(f"  {matches}/{len(rows)} match the expected output; sum of medians {total:.3f} s")


# --- (b) the synthetic cluster -------------------------------------------------------------

TEAMS = (
    "payments", "checkout", "catalog", "search", "identity", "billing", "shipping",
    "analytics", "ads", "notifications", "platform", "data",
)  # fmt: skip
ENVS = ("prod", "staging")

# component -> (tier, container ports as (name, port, protocol))
COMPONENTS: dict[str, tuple[str, tuple[tuple[str, int, str], ...]]] = {
    "web": ("frontend", (("http", 8080, "TCP"), ("metrics", 9090, "TCP"))),
    "gateway": (
        "frontend",
        (("https", 8443, "TCP"), ("http", 8080, "TCP"), ("metrics", 9090, "TCP")),
    ),
    "api": ("backend", (("http", 8080, "TCP"), ("grpc", 50051, "TCP"), ("metrics", 9090, "TCP"))),
    "orders": ("backend", (("grpc", 50051, "TCP"), ("metrics", 9090, "TCP"))),
    "cart": ("backend", (("grpc", 7070, "TCP"), ("metrics", 9090, "TCP"))),
    "inventory": ("backend", (("http", 8080, "TCP"), ("metrics", 9090, "TCP"))),
    "pricing": ("backend", (("grpc", 50051, "TCP"), ("metrics", 9090, "TCP"))),
    "users": ("backend", (("http", 8080, "TCP"), ("grpc", 50051, "TCP"))),
    "auth": ("backend", (("https", 8443, "TCP"), ("metrics", 9090, "TCP"))),
    "sessions": ("backend", (("grpc", 50052, "TCP"),)),
    "recommender": ("backend", (("grpc", 8080, "TCP"), ("metrics", 9090, "TCP"))),
    "reporting": ("backend", (("http", 8000, "TCP"), ("metrics", 9090, "TCP"))),
    "ledger": ("backend", (("grpc", 50051, "TCP"), ("metrics", 9090, "TCP"))),
    "mailer": ("worker", (("metrics", 9090, "TCP"), ("statsd", 8125, "UDP"))),
    "worker": ("worker", (("metrics", 9090, "TCP"),)),
    "scheduler": ("worker", (("metrics", 9090, "TCP"),)),
    "indexer": ("worker", (("metrics", 9090, "TCP"), ("statsd", 8125, "UDP"))),
    "postgres": ("db", (("postgres", 5432, "TCP"), ("metrics", 9187, "TCP"))),
    "redis": ("db", (("redis", 6379, "TCP"), ("metrics", 9121, "TCP"))),
    "kafka": ("db", (("kafka", 9092, "TCP"), ("kafka-ctrl", 9093, "TCP"))),
    "elasticsearch": ("db", (("http", 9200, "TCP"), ("transport", 9300, "TCP"))),
    "memcached": ("db", (("memcache", 11211, "TCP"), ("memcache-udp", 11211, "UDP"))),
    "coredns": ("system", (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP"))),
    "prometheus": ("monitoring", (("web", 9090, "TCP"),)),
    "grafana": ("monitoring", (("http", 3000, "TCP"),)),
    "node-exporter": ("monitoring", (("metrics", 9100, "TCP"),)),
}
TEAM_COMPONENTS = [c for c, (tier, _) in COMPONENTS.items() if tier not in ("system", "monitoring")]
DB_PORTS = {"postgres": 5432, "redis": 6379, "kafka": 9092, "elasticsearch": 9200}
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def _ns_object(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _workload(
    ns: str, name: str, kind: str, labels: dict[str, str], ports: tuple[tuple[str, int, str], ...]
) -> dict[str, Any]:
    container_ports = [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports]
    containers: list[dict[str, Any]] = [
        {"name": name, "image": f"registry.example/{name}:1.0", "ports": container_ports}
    ]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": labels["app"]}},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
    }
    if kind != "DaemonSet":
        spec["replicas"] = 2
    if kind == "StatefulSet":
        spec["serviceName"] = name
    meta = {"name": name, "namespace": ns, "labels": {"app": labels["app"]}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


def _np(ns: str, name: str, selector: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": selector, **spec},
    }


def _app(app: str) -> dict[str, Any]:
    return {"matchLabels": {"app": app}}


def _ns_sel(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


class Cluster:
    """The generated cluster: namespaces, workloads and policies as manifest objects."""

    def __init__(self, rng: random.Random, workloads: int, policies: int) -> None:
        self.rng = rng
        self.namespaces: dict[str, dict[str, str]] = {}
        self.workloads: dict[str, list[dict[str, Any]]] = {}
        self.apps: dict[str, list[tuple[str, str]]] = {}  # ns -> (app, component)
        self.policies: list[dict[str, Any]] = []
        self._make_namespaces()
        self._make_workloads(workloads)
        self._make_policies(policies)

    def _make_namespaces(self) -> None:
        self.namespaces["kube-system"] = {"team": "platform", "env": "system"}
        self.namespaces["monitoring"] = {"team": "platform", "env": "system"}
        for team in TEAMS:
            for env in ENVS:
                if len(self.namespaces) == 25:
                    return
                labels = {"team": team, "env": env}
                if self.rng.random() < 0.4:
                    labels["istio-injection"] = "enabled"
                if env == "prod" and self.rng.random() < 0.5:
                    labels["compliance"] = self.rng.choice(("pci", "sox"))
                self.namespaces[f"{team}-{env}"] = labels

    def _add(self, ns: str, name: str, kind: str, component: str, extra: dict[str, str]) -> None:
        tier, ports = COMPONENTS.get(component, ("system", ()))
        labels = {"app": name, "tier": tier, "team": self.namespaces[ns]["team"], **extra}
        self.workloads.setdefault(ns, []).append(_workload(ns, name, kind, labels, ports))
        self.apps.setdefault(ns, []).append((name, component))

    def _make_workloads(self, total: int) -> None:
        self._add("kube-system", "coredns", "Deployment", "coredns", {"k8s-app": "kube-dns"})
        self._add("kube-system", "kube-proxy", "DaemonSet", "kube-proxy", {"k8s-app": "proxy"})
        self._add("monitoring", "prometheus", "StatefulSet", "prometheus", {})
        self._add("monitoring", "grafana", "Deployment", "grafana", {})
        self._add("monitoring", "node-exporter", "DaemonSet", "node-exporter", {})
        team_ns = [ns for ns in self.namespaces if ns not in ("kube-system", "monitoring")]
        names = TEAM_COMPONENTS
        left = total - 5
        for k, ns in enumerate(team_ns):
            count = left // len(team_ns) + (k < left % len(team_ns))
            for n in range(count):
                component = names[n % len(names)]
                name = component if n < len(names) else f"{component}-{n // len(names) + 1}"
                tier = COMPONENTS[component][0]
                kind = "StatefulSet" if tier == "db" else "Deployment"
                if component == "worker" and self.rng.random() < 0.3:
                    kind = "DaemonSet"
                extra = {"version": self.rng.choice(("v1", "v1", "v2"))}
                self._add(ns, name, kind, component, extra)

    def _ns_base(self, ns: str) -> list[dict[str, Any]]:
        """Default-deny, DNS egress, scraping by monitoring, same-namespace traffic."""
        dns_peer = {"namespaceSelector": _ns_sel("kube-system"),
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}  # fmt: skip
        out = [
            _np(ns, "default-deny", {}, {"policyTypes": ["Ingress", "Egress"]}),
            _np(ns, "allow-dns", {}, {
                "policyTypes": ["Egress"],
                "egress": [{"to": [dns_peer], "ports": [
                    {"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
            }),
            _np(ns, "allow-monitoring", {}, {
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": _ns_sel("monitoring"),
                                       "podSelector": _app("prometheus")}],
                             "ports": [{"port": "metrics"}, {"port": 9187}, {"port": 9121}]}],
            }),
        ]  # fmt: skip
        if self.rng.random() < 0.3:
            out.append(_np(ns, "allow-same-namespace", {}, {
                "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}],
            }))  # fmt: skip
        if self.rng.random() < 0.3:  # ingress isolation only: egress stays open
            out[0]["spec"]["policyTypes"] = ["Ingress"]
            return out
        if self.rng.random() < 0.7:
            out.append(_np(ns, "allow-egress-same-namespace", {}, {
                "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}],
            }))  # fmt: skip
        backends = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"tier": "backend"}}}
        out.append(_np(ns, "allow-frontend-egress", {"matchLabels": {"tier": "frontend"}}, {
            "policyTypes": ["Egress"],
            "egress": [{"to": [backends], "ports": [{"port": "http"}, {"port": "grpc"}]}],
        }))  # fmt: skip
        return out

    def _from_namespace(self, ns: str) -> dict[str, Any]:
        """Frontends (or one app) open to another team's namespaces or to prod."""
        team, env = self.namespaces[ns]["team"], self.namespaces[ns]["env"]
        other = self.rng.choice([t for t in TEAMS if t != team])
        choice = self.rng.randrange(3)
        if choice == 0:
            peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {"team": other}}}
        elif choice == 1:
            teams = {"key": "team", "operator": "In", "values": [team, other]}
            peer = {"namespaceSelector": {"matchLabels": {"env": env},
                                          "matchExpressions": [teams]}}  # fmt: skip
        else:
            peer = {"namespaceSelector": {"matchExpressions": [
                {"key": "compliance", "operator": "Exists"}]}, "podSelector": {
                "matchExpressions": [{"key": "tier", "operator": "In",
                                      "values": ["frontend", "backend"]}]}}  # fmt: skip
        selector = {"matchLabels": {"tier": "frontend"}}
        return _np(ns, f"allow-from-{other}-{choice}", selector, {
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [peer], "ports": [{"port": "http"}, {"port": "https"}]}],
        })  # fmt: skip

    def _ports_of(self, component: str) -> list[dict[str, Any]]:
        ports = COMPONENTS[component][1]
        pick = self.rng.random()
        name, number, protocol = ports[0]
        if pick < 0.4:  # named port
            return [{"protocol": protocol, "port": name}]
        if pick < 0.8:
            return [{"protocol": protocol, "port": number}]
        if pick < 0.9:  # a range
            return [{"protocol": protocol, "port": number, "endPort": number + 10}]
        return [{"protocol": p, "port": n} for _, n, p in ports]

    def _from_app(self, ns: str, app: str, component: str, callers: list[str]) -> dict[str, Any]:
        peers: list[dict[str, Any]] = [{"podSelector": _app(c)} for c in callers]
        if self.rng.random() < 0.25:
            other = self.rng.choice(list(self.namespaces))
            peers.append({"namespaceSelector": _ns_sel(other),
                          "podSelector": {"matchLabels": {"tier": "frontend"}}})  # fmt: skip
        return _np(ns, f"allow-{app}-ingress", _app(app), {
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": self._ports_of(component)}],
        })  # fmt: skip

    def _egress(self, ns: str, app: str, dbs: list[str]) -> dict[str, Any]:
        rules: list[dict[str, Any]] = []
        for db in dbs:
            port = DB_PORTS.get(db.split("-")[0], 5432)
            rules.append({"to": [{"podSelector": _app(db)}], "ports": [{"port": port}]})
        if self.rng.random() < 0.3:
            rules.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE)}}],
                          "ports": [{"protocol": "TCP", "port": 443}]})  # fmt: skip
        return _np(
            ns, f"allow-{app}-egress", _app(app), {"policyTypes": ["Egress"], "egress": rules}
        )

    def _ip_ingress(self, ns: str, app: str, component: str, n: int) -> dict[str, Any]:
        a, b = self.rng.randrange(256), self.rng.randrange(256)
        block = {"cidr": f"10.{a}.0.0/16", "except": [f"10.{a}.{b}.0/24"]}
        if n % 3 == 0:
            block = {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", *PRIVATE]}
        elif n % 3 == 1:
            net = f"172.{16 + a % 16}.{b}"
            hole = f"{net}.{self.rng.randrange(0, 256, 16)}/28"
            block = {"cidr": f"{net}.0/24", "except": [hole]}
        return _np(ns, f"allow-{app}-from-lb", _app(app), {
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": block}], "ports": self._ports_of(component)}],
        })  # fmt: skip

    def _make_policies(self, total: int) -> None:
        rng = self.rng
        base: list[dict[str, Any]] = []
        per_app: list[dict[str, Any]] = []
        extra: list[dict[str, Any]] = []
        ks = "kube-system"
        base.append(_np(ks, "allow-dns-from-all", {"matchLabels": {"k8s-app": "kube-dns"}}, {
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {}}],
                         "ports": [{"protocol": "UDP", "port": "dns"},
                                   {"protocol": "TCP", "port": "dns-tcp"}]}],
        }))  # fmt: skip
        base.append(_np("monitoring", "prometheus-egress", _app("prometheus"), {
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {}}],
                        "ports": [{"port": 9090}, {"port": 9100}, {"port": 9121},
                                  {"port": 9153}, {"port": 9187}]}],
        }))  # fmt: skip
        n_ip = 0
        for ns in self.namespaces:
            if ns in ("kube-system", "monitoring"):
                continue
            base.extend(self._ns_base(ns))
            base.append(self._from_namespace(ns))
            apps = self.apps[ns]
            names = [a for a, _ in apps]
            dbs = [a for a, c in apps if COMPONENTS[c][0] == "db"]
            for app, component in apps:
                others = [a for a in names if a != app]
                callers = rng.sample(others, k=min(len(others), rng.randint(1, 3)))
                per_app.append(self._from_app(ns, app, component, callers))
                tier = COMPONENTS[component][0]
                if tier in ("backend", "worker") and dbs:
                    per_app.append(self._egress(ns, app, rng.sample(dbs, k=min(2, len(dbs)))))
                if tier == "frontend" or rng.random() < 0.05:
                    per_app.append(self._ip_ingress(ns, app, component, n_ip))
                    n_ip += 1
                for k in range(2):  # candidates to pad to the total: one caller, one port
                    caller = rng.choice(others)
                    extra.append(_np(ns, f"allow-{caller}-to-{app}-{k}", _app(app), {
                        "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"podSelector": _app(caller)}],
                                     "ports": self._ports_of(component)}],
                    }))  # fmt: skip
        policies = base + per_app
        rng.shuffle(extra)
        seen = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in policies}
        for p in extra:
            if len(policies) >= total:
                break
            key = (p["metadata"]["namespace"], p["metadata"]["name"])
            if key not in seen:
                seen.add(key)
                policies.append(p)
        self.policies = policies[:total]

    def changed(self, rng: random.Random, count: int) -> tuple[list[dict[str, Any]], Counter[str]]:
        """The policies after ``count`` changes: exposures, port changes, deletions and
        egress opened to the Internet; with the count of each kind."""
        policies = copy.deepcopy(self.policies)
        kinds = ("exposure", "port", "delete", "egress")
        weights = (0.3, 0.3, 0.25, 0.15)
        victims = rng.sample(range(len(policies)), count)
        done: Counter[str] = Counter()
        dropped: set[int] = set()
        for i in victims:
            kind = rng.choices(kinds, weights)[0]
            spec = policies[i]["spec"]
            ingress = spec.get("ingress") or []
            if kind == "exposure" and ingress:
                how = rng.randrange(3)
                if how == 0:
                    ingress[0]["from"] = [{"namespaceSelector": {}}]
                elif how == 1:
                    ingress[0].pop("from", None)
                else:
                    ingress[0].setdefault("from", []).append({"ipBlock": {"cidr": "0.0.0.0/0"}})
            elif kind == "port" and any(r.get("ports") for r in ingress + spec.get("egress", [])):
                rule = next(r for r in ingress + spec.get("egress", []) if r.get("ports"))
                port = rule["ports"][0]
                if isinstance(port.get("port"), str) or "endPort" in port:
                    port.pop("endPort", None)
                    port["port"] = rng.choice((8080, 9090, 50051))
                else:
                    port["port"] = int(port.get("port", 80)) + rng.choice((1, 1000))
            elif kind == "delete":
                dropped.add(i)
            else:
                kind = "egress"
                types = {*spec.get("policyTypes", ["Ingress"]), "Egress"}
                spec["policyTypes"] = [t for t in ("Ingress", "Egress") if t in types]
                spec.setdefault("egress", []).append(
                    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}
                )
            done[kind] += 1
        return [p for i, p in enumerate(policies) if i not in dropped], done


def _dump(path: Path, objects: list[dict[str, Any]]) -> None:
    path.write_text(yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False))


def write_state(root: Path, cluster: Cluster, policies: list[dict[str, Any]]) -> Path:
    """One state as a directory: namespaces.yaml, <ns>-workloads.yaml, <ns>-policies.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    _dump(root / "namespaces.yaml", [_ns_object(n, lb) for n, lb in cluster.namespaces.items()])
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for p in policies:
        by_ns.setdefault(p["metadata"]["namespace"], []).append(p)
    for ns, objects in cluster.workloads.items():
        _dump(root / f"{ns}-workloads.yaml", objects)
    for ns, objects in by_ns.items():
        _dump(root / f"{ns}-policies.yaml", objects)
    return root


def synthetic_states(
    root: Path, *, workloads: int, policies: int, changes: int, seed: int
) -> tuple[Path, Path, Counter[str]]:
    """Write the two states under ``root`` (``ref1``, ``ref2``); deterministic for ``seed``."""
    rng = random.Random(seed)
    cluster = Cluster(rng, workloads, policies)
    after, done = cluster.changed(rng, changes)
    one = write_state(root / "ref1", cluster, cluster.policies)
    two = write_state(root / "ref2", cluster, after)
    return one, two, done


def bench_synthetic(args: argparse.Namespace, root: Path) -> None:
    one, two, done = synthetic_states(
        root, workloads=args.workloads, policies=args.policies, changes=args.changes, seed=args.seed
    )
    s1 = load_cluster_dir(one)
    s2 = load_cluster_dir(two)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(done.items()))
    print(
        f"(b) synthetic cluster (seed {args.seed}): {len(s1.topology.namespaces)} namespaces, "
        f"{len(s1.topology.workloads)} workloads, {len(s1.policies)} policies; second state "
        f"{len(s2.policies)} policies after {sum(done.values())} changes ({kinds})"
    )
    phases: dict[str, list[float]] = {"load": [], "build": [], "diff": [], "render": []}
    totals: list[float] = []
    diffs: list[Any] = []
    for _ in range(args.synthetic_repeat):
        t0 = time.perf_counter()
        a, b = load_cluster_dir(one), load_cluster_dir(two)
        t1 = time.perf_counter()
        c1, c2 = Connectivity(a.topology, a.policies), Connectivity(b.topology, b.policies)
        t2 = time.perf_counter()
        diffs = connectivity_diff(c1, c2)
        t3 = time.perf_counter()
        render_diff(diffs, "txt", ref1=str(one), ref2=str(two))
        t4 = time.perf_counter()
        for name, spent in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phases[name].append(spent)
        totals.append(t4 - t0)
    med = {k: statistics.median(v) for k, v in phases.items()}
    by_type = Counter(d.diff_type for d in diffs)
    external = sum("[External]" in d.source or "[External]" in d.destination for d in diffs)
    total = statistics.median(totals)
    verdict = "under" if total < 10 else "OVER"
    print(
        f"  connectivity diff: median {total:.2f} s of {args.synthetic_repeat} ({verdict} the "
        f"10 s goal); load {med['load']:.2f} s, Connectivity {med['build']:.3f} s, diff "
        f"{med['diff']:.2f} s, render {med['render']:.3f} s"
    )
    print(
        f"  pairs found: {len(diffs)} ({by_type['changed']} changed, {by_type['added']} added, "
        f"{by_type['removed']} removed; {external} with an external range)"
    )
    times = []
    count = 0
    for _ in range(args.synthetic_repeat):
        start = time.perf_counter()
        count = len(connection_list(Connectivity(s1.topology, s1.policies)))
        times.append(time.perf_counter() - start)
    print(
        f"  connection_list of the first state: median {statistics.median(times):.2f} s, "
        f"{count} connections"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        a, b = load_cluster_dir(one), load_cluster_dir(two)
        connectivity_diff(
            Connectivity(a.topology, a.policies), Connectivity(b.topology, b.policies)
        )
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per reference case")
    parser.add_argument("--synthetic-repeat", type=int, default=3, help="runs of the large diff")
    parser.add_argument("--workloads", type=int, default=500)
    parser.add_argument("--policies", type=int, default=1_000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="write the synthetic states here and keep them")
    parser.add_argument("--profile", action="store_true", help="cProfile one synthetic diff")
    parser.add_argument("--skip-corpus", action="store_true")
    args = parser.parse_args()
    if not args.skip_corpus:
        bench_corpus(args.repeat)
    if args.keep is not None:
        bench_synthetic(args, args.keep)
        return
    with tempfile.TemporaryDirectory() as tmp:
        bench_synthetic(args, Path(tmp))


if __name__ == "__main__":
    main()
