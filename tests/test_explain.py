"""`driftwatch explain` against the recipe manifests and their expected reading.

``tests/data/recipes/expected.yaml`` says, per manifest (written after the public
ahmetb/kubernetes-network-policy-recipes collection, see its README.md), what the policy
selects, the state of each direction and every (peer, ports) it allows, in its own
vocabulary (peer kinds, kubectl-style selector strings, CIDR + except). The explain JSON
speaks the connectivity model's vocabulary (pod peers as namespace selector AND pod
selector, address ranges grouped by ports, "anywhere" ports). This file maps both onto
one semantic form and compares them exactly: a wrong peer, port, address or state fails
(``test_the_comparison_is_strict`` checks that it does).

The semantic form of one direction is
  - pods: {(namespace selector, pod selector): every port the peer may use}, merged per
    peer, including what every pod in every namespace may use; a peer that gets nothing
    more than that is not listed on its own (the recipes need no other subsumption);
  - addresses: a canonical map from the IPv4+IPv6 address line to ports (maximal runs);
  - anywhere: the ports open to every pod in every namespace and every address.
Selectors compare as sets of requirements (``a=b`` is ``a in (b)``, order ignored); ports
as per-protocol merged ranges plus named ports.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.cli import main
from driftwatch.policy import parse_selector_string

RECIPES = Path(__file__).resolve().parent / "data" / "recipes"
EXPECTED: list[dict[str, Any]] = yaml.safe_load((RECIPES / "expected.yaml").read_text())
DEFAULT_NAMESPACE = "default"
NAME_LABEL = "kubernetes.io/metadata.name"
STATES = {"not isolated", "deny all", "allow listed"}

# --- ports -----------------------------------------------------------------------------------

PROTOCOLS = ("TCP", "UDP", "SCTP")
FULL = ((1, 65535),)
_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def _merge(pairs: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(pairs):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return tuple(out)


def _intersect(
    a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    return _merge(
        (max(alo, blo), min(ahi, bhi))
        for alo, ahi in a
        for blo, bhi in b
        if max(alo, blo) <= min(ahi, bhi)
    )


def _subtract(
    a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in a:
        pieces = [(lo, hi)]
        for blo, bhi in b:
            nxt = []
            for plo, phi in pieces:
                if bhi < plo or blo > phi:
                    nxt.append((plo, phi))
                    continue
                if plo < blo:
                    nxt.append((plo, blo - 1))
                if bhi < phi:
                    nxt.append((bhi + 1, phi))
            pieces = nxt
        out.extend(pieces)
    return _merge(out)


@dataclass(frozen=True)
class Ports:
    """Numeric ranges per protocol plus (protocol, name) pairs; a name under a full range
    is implied by it and dropped, so equal sets compare equal."""

    ranges: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = ()
    names: frozenset[tuple[str, str]] = frozenset()

    @staticmethod
    def make(
        ranges: dict[str, Iterable[tuple[int, int]]], names: Iterable[tuple[str, str]]
    ) -> Ports:
        clean = {p: _merge(ranges.get(p, ())) for p in PROTOCOLS}
        full = {p for p, r in clean.items() if r == FULL}
        return Ports(
            tuple((p, r) for p, r in clean.items() if r),
            frozenset(n for n in names if n[0] not in full),
        )

    @staticmethod
    def parse(items: str | list[str]) -> Ports:
        """``"all"`` / ``["all"]`` (every port of every protocol) or ``PROTO/port``,
        ``PROTO/lo-hi``, ``PROTO/name``."""
        if items in ("all", ["all"]):
            return ALL
        assert isinstance(items, list), items
        assert items, "an empty port list means nothing; write 'all' for every port"
        ranges: dict[str, list[tuple[int, int]]] = {}
        names: set[tuple[str, str]] = set()
        for item in items:
            proto, _, port = item.partition("/")
            assert proto in PROTOCOLS, item
            assert port, item
            m = _RANGE.fullmatch(port)
            if m:
                lo = int(m[1])
                ranges.setdefault(proto, []).append((lo, int(m[2]) if m[2] else lo))
            else:
                names.add((proto, port))
        return Ports.make(ranges, names)

    def __bool__(self) -> bool:
        return bool(self.ranges or self.names)

    def _full(self) -> set[str]:
        return {p for p, r in self.ranges if r == FULL}

    def __or__(self, other: Ports) -> Ports:
        a, b = dict(self.ranges), dict(other.ranges)
        return Ports.make(
            {p: (*a.get(p, ()), *b.get(p, ())) for p in PROTOCOLS}, self.names | other.names
        )

    def __and__(self, other: Ports) -> Ports:
        a, b = dict(self.ranges), dict(other.ranges)
        names = (self.names & other.names) | {n for n in self.names if n[0] in other._full()}
        names |= {n for n in other.names if n[0] in self._full()}
        return Ports.make({p: _intersect(a.get(p, ()), b.get(p, ())) for p in PROTOCOLS}, names)

    def __sub__(self, other: Ports) -> Ports:
        a, b = dict(self.ranges), dict(other.ranges)
        return Ports.make(
            {p: _subtract(a.get(p, ()), b.get(p, ())) for p in PROTOCOLS},
            {n for n in self.names - other.names if n[0] not in other._full()},
        )


ALL = Ports(tuple((p, FULL) for p in PROTOCOLS))
NONE = Ports()

# --- selectors -------------------------------------------------------------------------------

SelectorKey = frozenset[tuple[str, str, frozenset[str]]]


def selector(text: str) -> SelectorKey:
    """A kubectl-style selector as a set of requirements; ``""`` and ``"*"`` match all."""
    if text == "*":
        text = ""
    parsed = parse_selector_string(text)
    reqs = {(k, "In", frozenset((v,))) for k, v in parsed.match_labels}
    reqs |= {(r.key, r.operator, frozenset(r.values)) for r in parsed.match_expressions}
    return frozenset(reqs)


EVERY: tuple[SelectorKey, SelectorKey] = (selector(""), selector(""))

# --- addresses -------------------------------------------------------------------------------

V6 = 1 << 32  # IPv6 addresses follow the IPv4 ones on one integer line
ALL_ADDRESSES = ((0, V6 + (1 << 128) - 1),)


def _network_range(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    base = 0 if net.version == 4 else V6
    return base + int(net.network_address), base + int(net.broadcast_address)


def cidr_minus(cidr: str, excepts: Iterable[str]) -> tuple[tuple[int, int], ...]:
    whole = (_network_range(ipaddress.ip_network(cidr)),)
    return _subtract(whole, _merge(_network_range(ipaddress.ip_network(e)) for e in excepts))


AddressMap = tuple[tuple[int, int, Ports], ...]


def address_map(entries: Iterable[tuple[tuple[tuple[int, int], ...], Ports]]) -> AddressMap:
    """The union of (addresses, ports) allowances as maximal runs of equal ports."""
    pieces = [(lo, hi, ports) for ranges, ports in entries for lo, hi in ranges if ports]
    cuts = sorted({b for lo, hi, _ in pieces for b in (lo, hi + 1)})
    out: list[tuple[int, int, Ports]] = []
    for start, stop in itertools.pairwise(cuts):
        ports = NONE
        for lo, hi, p in pieces:
            if lo <= start and stop - 1 <= hi:
                ports = ports | p
        if not ports:
            continue
        if out and out[-1][1] + 1 == start and out[-1][2] == ports:
            out[-1] = (out[-1][0], stop - 1, ports)
        else:
            out.append((start, stop - 1, ports))
    return tuple(out)


def open_everywhere(addresses: AddressMap) -> Ports:
    """The ports every address may use (nothing if some address has none)."""
    if _subtract(ALL_ADDRESSES, _merge((lo, hi) for lo, hi, _ in addresses)):
        return NONE
    result = ALL
    for _, _, ports in addresses:
        result = result & ports
    return result


# --- the semantic form -----------------------------------------------------------------------


@dataclass
class Direction:
    state: str
    pods: dict[tuple[SelectorKey, SelectorKey], Ports] = field(default_factory=dict)
    addresses: AddressMap = ()
    anywhere: Ports = NONE


@dataclass
class Reading:
    namespace: str
    name: str
    selects: SelectorKey
    ingress: Direction
    egress: Direction

    def direction(self, name: str) -> Direction:
        d: Direction = getattr(self, name)
        return d


def _reduce(pods: dict[tuple[SelectorKey, SelectorKey], Ports]) -> dict[Any, Ports]:
    """Each pod peer with every port it may use; a peer that gets nothing beyond what
    every pod in every namespace gets is not listed on its own."""
    every = pods.get(EVERY, NONE)
    return {peer: ports | every for peer, ports in pods.items() if peer == EVERY or ports - every}


def _expected_direction(entry: dict[str, Any], direction: str) -> Direction:
    state = entry[direction]
    assert state in STATES, state
    allows = [a for a in entry["allows"] if a["direction"] == direction]
    if state != "allow listed":
        assert not allows, f"{direction} is {state} but expected.yaml lists allowances"
        return Direction(state)
    assert allows, f"{direction} is allow listed but expected.yaml lists nothing"
    own = selector(f"{NAME_LABEL}={entry['namespace'] or DEFAULT_NAMESPACE}")
    pods: dict[tuple[SelectorKey, SelectorKey], Ports] = {}
    ips: list[tuple[tuple[tuple[int, int], ...], Ports]] = []

    def add(peer: tuple[SelectorKey, SelectorKey], ports: Ports) -> None:
        pods[peer] = pods.get(peer, NONE) | ports

    for a in allows:
        kind, ports = a["peer_kind"], Ports.parse(a["ports"])
        pod_sel, ns_sel, cidr = a["selector"], a["namespace_selector"], a["cidr"]
        if kind != "ip-block":
            assert cidr is None, a
            assert a["except"] == [], a
        if kind == "same-namespace-pods":
            assert ns_sel is None, a
            assert pod_sel is not None, a
            add((own, selector(pod_sel)), ports)
        elif kind == "namespaces":
            assert pod_sel is None, a
            assert ns_sel is not None, a
            add((selector(ns_sel), selector("")), ports)
        elif kind == "pods-in-namespaces":
            assert ns_sel is not None, a
            assert pod_sel is not None, a
            add((selector(ns_sel), selector(pod_sel)), ports)
        elif kind == "all-pods-all-namespaces":
            assert ns_sel == "", a
            assert pod_sel in (None, ""), a
            add(EVERY, ports)
        elif kind == "ip-block":
            assert pod_sel is None, a
            assert ns_sel is None, a
            assert cidr, a
            ips.append((cidr_minus(cidr, a["except"]), ports))
        elif kind == "everything":
            assert pod_sel is None, a
            assert ns_sel is None, a
            add(EVERY, ports)
            ips.append((ALL_ADDRESSES, ports))
        else:
            pytest.fail(f"unknown peer_kind {kind!r}")
    addresses = address_map(ips)
    return Direction(
        state, _reduce(pods), addresses, pods.get(EVERY, NONE) & open_everywhere(addresses)
    )


def expected_reading(entry: dict[str, Any]) -> Reading:
    selects = "" if entry["selects"] == "all pods" else entry["selects"]
    return Reading(
        entry["namespace"] or DEFAULT_NAMESPACE,
        entry["policy"],
        selector(selects),
        _expected_direction(entry, "ingress"),
        _expected_direction(entry, "egress"),
    )


def _json_direction(out: dict[str, Any], direction: str) -> Direction:
    d = out[direction]
    assert set(d) == {"state", "ignored_rules", "anywhere", "allows"}
    state = d["state"]
    assert state in STATES, state
    pods: dict[tuple[SelectorKey, SelectorKey], Ports] = {}
    ips: list[tuple[tuple[tuple[int, int], ...], Ports]] = []
    for flow in d["allows"]:
        assert set(flow) == {"direction", "selected_pods", "peer", "ports"}, flow
        assert flow["direction"] == direction
        assert flow["selected_pods"].endswith(f" in {out['namespace']}"), flow
        ports = Ports.parse(flow["ports"])
        assert ports, flow
        peer = flow["peer"]
        if "cidrs" in peer:
            assert set(peer) == {"cidrs"}, flow
            ranges = _merge(_network_range(ipaddress.ip_network(c)) for c in peer["cidrs"])
            ips.append((ranges, ports))
        else:
            assert set(peer) == {"namespaces", "pods"}, flow
            key = (selector(peer["namespaces"]), selector(peer["pods"]))
            assert key not in pods, f"pod peer listed twice: {flow}"
            pods[key] = ports
    anywhere = Ports.parse(d["anywhere"]) if d["anywhere"] else NONE
    return Direction(state, pods, address_map(ips), anywhere)


def json_reading(out: dict[str, Any]) -> Reading:
    assert out["selects"] is not None, "the policy selects no pod"
    return Reading(
        out["namespace"],
        out["name"],
        selector(out["selects"]),
        _json_direction(out, "ingress"),
        _json_direction(out, "egress"),
    )


def mismatches(want: Reading, got: Reading) -> list[str]:
    problems = []
    for attr in ("namespace", "name", "selects"):
        if getattr(want, attr) != getattr(got, attr):
            problems.append(f"{attr}: want {getattr(want, attr)}, got {getattr(got, attr)}")
    for direction in ("ingress", "egress"):
        w, g = want.direction(direction), got.direction(direction)
        for attr in ("state", "pods", "addresses", "anywhere"):
            if getattr(w, attr) != getattr(g, attr):
                problems.append(
                    f"{direction} {attr}: want {getattr(w, attr)}, got {getattr(g, attr)}"
                )
    return problems


# --- running the command ---------------------------------------------------------------------


def run_explain(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    status = main(["explain", *args])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert err == ""
    return out


def explain_json(capsys: pytest.CaptureFixture[str], file: str) -> dict[str, Any]:
    out = json.loads(run_explain(capsys, str(RECIPES / file), "--format", "json"))
    assert isinstance(out, list)
    assert len(out) == 1, "one policy per recipe manifest"
    policy: dict[str, Any] = out[0]
    assert set(policy) == {"namespace", "name", "selects", "text", "ingress", "egress"}
    return policy


def explain_text(capsys: pytest.CaptureFixture[str], file: str) -> str:
    return run_explain(capsys, str(RECIPES / file))


# --- the tests -------------------------------------------------------------------------------


def test_expected_yaml_covers_every_recipe_manifest() -> None:
    manifests = {p.name for p in RECIPES.glob("*.yaml")} - {"expected.yaml"}
    listed = [e["file"] for e in EXPECTED]
    assert len(listed) == len(set(listed))
    assert set(listed) == manifests


@pytest.mark.parametrize("entry", EXPECTED, ids=[e["file"] for e in EXPECTED])
def test_explain_json_agrees_with_expected_yaml(
    capsys: pytest.CaptureFixture[str], entry: dict[str, Any]
) -> None:
    out = explain_json(capsys, entry["file"])
    assert mismatches(expected_reading(entry), json_reading(out)) == []
    for direction in ("ingress", "egress"):
        # No recipe writes rules for a direction outside its policyTypes.
        assert out[direction]["ignored_rules"] == 0
        if out[direction]["state"] != "allow listed":
            assert out[direction]["allows"] == []
            assert out[direction]["anywhere"] == []
    assert out["text"] == explain_text(capsys, entry["file"]).rstrip("\n")


def _entry(file: str) -> dict[str, Any]:
    return next(e for e in EXPECTED if e["file"] == file)


def _mutations() -> list[tuple[str, str, Any]]:
    """(file, what, mutate) triples: each turns a right expectation into a wrong one."""

    def set_allow(i: int, key: str, value: Any) -> Any:
        def mutate(e: dict[str, Any]) -> None:
            e["allows"][i][key] = value

        return mutate

    def set_field(key: str, value: Any) -> Any:
        def mutate(e: dict[str, Any]) -> None:
            e[key] = value

        return mutate

    def drop_allow(i: int) -> Any:
        def mutate(e: dict[str, Any]) -> None:
            del e["allows"][i]

        return mutate

    return [
        ("02-limit-to-app.yaml", "pod selector", set_allow(0, "selector", "app=bookstor")),
        (
            "02-limit-to-app.yaml",
            "own namespace vs all namespaces",
            lambda e: e["allows"][0].update(peer_kind="pods-in-namespaces", namespace_selector=""),
        ),
        (
            "05-allow-from-all-namespaces.yaml",
            "pods vs everything",
            lambda e: e["allows"][0].update(peer_kind="everything", namespace_selector=None),
        ),
        (
            "05-variant-null-from.yaml",
            "everything vs pods",
            lambda e: e["allows"][0].update(
                peer_kind="all-pods-all-namespaces", namespace_selector=""
            ),
        ),
        (
            "06-allow-from-a-namespace.yaml",
            "namespace selector",
            set_allow(0, "namespace_selector", "purpose=prod"),
        ),
        (
            "07-allow-some-pods-in-another-namespace.yaml",
            "AND read as a namespace peer",
            lambda e: e["allows"][0].update(peer_kind="namespaces", selector=None),
        ),
        ("07-variant-or.yaml", "a peer missing", drop_allow(1)),
        ("08-variant-port-80.yaml", "port", set_allow(0, "ports", ["TCP/8080"])),
        ("08-variant-port-80.yaml", "protocol", set_allow(0, "ports", ["UDP/80"])),
        ("08-variant-port-80.yaml", "all ports", set_allow(0, "ports", "all")),
        ("09-variant-named-port.yaml", "named port resolved", set_allow(0, "ports", ["TCP/5000"])),
        ("11-variant-allow-dns.yaml", "one protocol only", set_allow(0, "ports", ["UDP/53"])),
        (
            "14-variant-in-cluster-only.yaml",
            "DNS as cluster-only",
            lambda e: e["allows"][0].update(
                peer_kind="all-pods-all-namespaces", namespace_selector=""
            ),
        ),
        (
            "08-allow-external.yaml",
            "everything as 0.0.0.0/0 only",
            lambda e: e["allows"][0].update(peer_kind="ip-block", cidr="0.0.0.0/0"),
        ),
        ("01-deny-all-to-app.yaml", "ingress state", set_field("ingress", "not isolated")),
        ("11-deny-egress-from-app.yaml", "egress state", set_field("egress", "not isolated")),
        ("11-deny-egress-from-app.yaml", "ingress state", set_field("ingress", "deny all")),
        ("03-default-deny-ingress-namespace.yaml", "selects", set_field("selects", "app=web")),
        ("01-deny-all-to-app.yaml", "selects", set_field("selects", "all pods")),
        ("02-limit-to-app.yaml", "namespace", set_field("namespace", "prod")),
    ]


@pytest.mark.parametrize(
    ("file", "what", "mutate"), _mutations(), ids=[f"{m[0]}:{m[1]}" for m in _mutations()]
)
def test_the_comparison_is_strict(
    capsys: pytest.CaptureFixture[str], file: str, what: str, mutate: Any
) -> None:
    entry = copy.deepcopy(_entry(file))
    mutate(entry)
    got = json_reading(explain_json(capsys, file))
    assert mismatches(expected_reading(entry), got), f"a wrong {what} went unnoticed"


def test_ip_block_expectations_map_to_cidrs() -> None:
    """No recipe has an ipBlock; check the mapping on a made-up entry against made-up JSON."""
    entry = {
        "policy": "p",
        "namespace": "shop",
        "selects": "app=web",
        "ingress": "allow listed",
        "egress": "not isolated",
        "allows": [
            {
                "direction": "ingress",
                "peer_kind": "ip-block",
                "selector": None,
                "namespace_selector": None,
                "cidr": "10.0.0.0/8",
                "except": ["10.1.0.0/16"],
                "ports": ["TCP/443"],
            }
        ],
    }
    cidrs = [
        str(n)
        for n in ipaddress.ip_network("10.0.0.0/8").address_exclude(
            ipaddress.ip_network("10.1.0.0/16")
        )
    ]
    flow = {
        "direction": "ingress",
        "selected_pods": "pods app=web in shop",
        "peer": {"cidrs": cidrs},
        "ports": ["TCP/443"],
    }
    out = {
        "namespace": "shop",
        "name": "p",
        "selects": "app=web",
        "text": "",
        "ingress": {"state": "allow listed", "ignored_rules": 0, "anywhere": [], "allows": [flow]},
        "egress": {"state": "not isolated", "ignored_rules": 0, "anywhere": [], "allows": []},
    }
    assert mismatches(expected_reading(entry), json_reading(out)) == []
    flow["peer"] = {"cidrs": ["10.0.0.0/8"]}
    assert mismatches(expected_reading(entry), json_reading(out))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("02a-allow-all-to-app.yaml", "05-variant-null-from.yaml", True),
        ("08-allow-external.yaml", "05-variant-null-from.yaml", True),
        ("14-deny-external-egress.yaml", "11-variant-allow-dns.yaml", True),
        ("05-allow-from-all-namespaces.yaml", "05-variant-null-from.yaml", False),
        ("07-allow-some-pods-in-another-namespace.yaml", "07-variant-or.yaml", False),
        ("09-allow-only-to-a-port.yaml", "09-variant-named-port.yaml", False),
        ("14-deny-external-egress.yaml", "14-variant-in-cluster-only.yaml", False),
    ],
)
def test_equivalences_the_notes_claim(
    capsys: pytest.CaptureFixture[str], a: str, b: str, same: bool
) -> None:
    """Notes in expected.yaml say which recipes allow the same traffic (names aside)."""
    ra, rb = json_reading(explain_json(capsys, a)), json_reading(explain_json(capsys, b))
    traffic_a = (ra.selects, ra.ingress, ra.egress)
    traffic_b = (rb.selects, rb.ingress, rb.egress)
    assert (traffic_a == traffic_b) is same


# --- the text form ---------------------------------------------------------------------------

ANYWHERE = "anywhere (every pod in every namespace and every address)"


def test_text_deny_all_ingress(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain_text(capsys, "01-deny-all-to-app.yaml").splitlines() == [
        "default/web-ingress-deny-all applies to pods app=web in default.",
        "  ingress: isolated; nothing is allowed (deny all).",
        "  egress: not restricted by this policy.",
    ]


def test_text_null_from_says_anywhere_but_namespace_selector_does_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    null_from = explain_text(capsys, "05-variant-null-from.yaml")
    assert f"    - {ANYWHERE} on all ports" in null_from.splitlines()
    every_ns = explain_text(capsys, "05-allow-from-all-namespaces.yaml")
    assert "anywhere" not in every_ns
    assert "every address" not in every_ns
    assert "    - every pod in every namespace on all ports" in every_ns.splitlines()


def test_text_and_vs_or(capsys: pytest.CaptureFixture[str]) -> None:
    both = explain_text(capsys, "07-allow-some-pods-in-another-namespace.yaml").splitlines()
    either = explain_text(capsys, "07-variant-or.yaml").splitlines()
    assert [line for line in both if line.startswith("    - ")] == [
        "    - pods type=monitoring in namespaces team=operations on all ports"
    ]
    assert sorted(line for line in either if line.startswith("    - ")) == [
        "    - every pod in namespaces team=operations on all ports",
        "    - pods type=monitoring in default on all ports",
    ]


def test_text_ports(capsys: pytest.CaptureFixture[str]) -> None:
    numbered = explain_text(capsys, "09-allow-only-to-a-port.yaml")
    assert "    - pods role=monitoring in default on TCP 5000" in numbered.splitlines()
    named = explain_text(capsys, "09-variant-named-port.yaml")
    assert '    - pods role=monitoring in default on TCP port "metrics"' in named.splitlines()
    assert "5000" not in named
    port_80 = explain_text(capsys, "08-variant-port-80.yaml")
    assert f"    - {ANYWHERE} on TCP 80" in port_80.splitlines()


@pytest.mark.parametrize(
    ("file", "header"),
    [
        ("11-deny-egress-from-app.yaml", "default/foo-egress-deny-all applies to pods app=foo"),
        (
            "12-default-deny-egress-namespace.yaml",
            "default/namespace-default-deny-egress applies to every pod",
        ),
    ],
)
def test_text_egress_deny_all(capsys: pytest.CaptureFixture[str], file: str, header: str) -> None:
    assert explain_text(capsys, file).splitlines() == [
        f"{header} in default.",
        "  ingress: not restricted by this policy.",
        "  egress: isolated; nothing is allowed (deny all).",
    ]


def test_text_dns_only_egress(capsys: pytest.CaptureFixture[str]) -> None:
    for file in ("11-variant-allow-dns.yaml", "14-deny-external-egress.yaml"):
        lines = explain_text(capsys, file).splitlines()
        assert lines[1:] == [
            "  ingress: not restricted by this policy.",
            "  egress: isolated; allowed only to:",
            "    - pods k8s-app=kube-dns in namespace kube-system on TCP 53; UDP 53",
        ]


def test_text_cluster_only_egress(capsys: pytest.CaptureFixture[str]) -> None:
    lines = explain_text(capsys, "14-variant-in-cluster-only.yaml").splitlines()
    assert lines[2:] == [
        "  egress: isolated; allowed only to:",
        f"    - {ANYWHERE} on TCP 53; UDP 53",
        "    - every pod in every namespace on all ports",
    ]


def test_text_same_namespace_only(capsys: pytest.CaptureFixture[str]) -> None:
    lines = explain_text(capsys, "04-deny-from-other-namespaces.yaml").splitlines()
    assert lines == [
        "default/same-namespace-only applies to every pod in default.",
        "  ingress: isolated; allowed only from:",
        "    - every pod in default on all ports",
        "  egress: not restricted by this policy.",
    ]


def test_explain_directory_lists_every_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for e in EXPECTED:
        (tmp_path / e["file"]).write_text((RECIPES / e["file"]).read_text())
    out = json.loads(run_explain(capsys, str(tmp_path), "--format", "json"))
    names = [p["name"] for p in out]
    assert sorted(names) == sorted(e["policy"] for e in EXPECTED)
    assert [(p["namespace"], p["name"]) for p in out] == sorted(
        (p["namespace"], p["name"]) for p in out
    )
    text = run_explain(capsys, str(tmp_path))
    assert text.count(" applies to ") == len(EXPECTED)


def test_default_namespace_option(capsys: pytest.CaptureFixture[str]) -> None:
    out = json.loads(
        run_explain(
            capsys,
            str(RECIPES / "02-limit-to-app.yaml"),
            "--format",
            "json",
            "--default-namespace",
            "books",
        )
    )
    assert out[0]["namespace"] == "books"
    [flow] = out[0]["ingress"]["allows"]
    assert selector(flow["peer"]["namespaces"]) == selector(f"{NAME_LABEL}=books")
    assert "    - pods app=bookstore in books on all ports" in out[0]["text"].splitlines()


def test_ip_block_peer_through_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An ipBlock (cidr minus except) next to a same-namespace peer, checked the same way."""
    manifest = tmp_path / "ipblock.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "db-from-office", "namespace": "shop"},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "db"}},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [
                                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                                {"ipBlock": {"cidr": "2001:db8::/32"}},
                                {"podSelector": {"matchLabels": {"app": "backup"}}},
                            ],
                            "ports": [{"port": 5432}, {"port": 8000, "endPort": 8100}],
                        }
                    ],
                },
            }
        )
    )
    peer = {"selector": None, "namespace_selector": None, "cidr": None, "except": []}
    ports = ["TCP/5432", "TCP/8000-8100"]
    entry = {
        "policy": "db-from-office",
        "namespace": "shop",
        "selects": "app=db",
        "ingress": "not isolated",
        "egress": "allow listed",
        "allows": [
            {
                **peer,
                "direction": "egress",
                "peer_kind": "ip-block",
                "cidr": "10.0.0.0/8",
                "except": ["10.1.0.0/16"],
                "ports": ports,
            },
            {
                **peer,
                "direction": "egress",
                "peer_kind": "ip-block",
                "cidr": "2001:db8::/32",
                "ports": ports,
            },
            {
                **peer,
                "direction": "egress",
                "peer_kind": "same-namespace-pods",
                "selector": "app=backup",
                "ports": ports,
            },
        ],
    }
    out = json.loads(run_explain(capsys, str(manifest), "--format", "json"))
    assert mismatches(expected_reading(entry), json_reading(out[0])) == []
    entry["allows"][0]["except"] = []
    assert mismatches(expected_reading(entry), json_reading(out[0]))


def test_each_pod_peer_is_listed_with_every_port_it_may_use(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A line never reads as if a port were denied that a broader peer allows."""
    manifest = tmp_path / "web.yaml"
    manifest.write_text(
        """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - ports: [{port: 80}]
    - from: [{podSelector: {matchLabels: {app: admin}}}]
    - from: [{namespaceSelector: {matchLabels: {team: ops}}}]
      ports: [{port: 9090}]
    - from:
        - namespaceSelector: {matchLabels: {team: ops}}
          podSelector: {matchLabels: {role: prom}}
      ports: [{port: 9090}, {port: 9100}]
"""
    )
    lines = run_explain(capsys, str(manifest)).splitlines()
    assert lines[1:6] == [
        "  ingress: isolated; allowed only from:",
        f"    - {ANYWHERE} on TCP 80",
        "    - pods app=admin in shop on all ports",
        "    - every pod in namespaces team=ops on TCP 80, 9090",
        "    - pods role=prom in namespaces team=ops on TCP 80, 9090, 9100",
    ]
    out = json.loads(run_explain(capsys, str(manifest), "--format", "json"))[0]
    ports = {
        (f["peer"]["namespaces"], f["peer"]["pods"]): f["ports"]
        for f in out["ingress"]["allows"]
        if "pods" in f["peer"]
    }
    assert ports == {
        ("*", "*"): ["TCP/80"],
        ("kubernetes.io/metadata.name=shop", "app=admin"): ["all"],
        ("team=ops", "*"): ["TCP/80", "TCP/9090"],
        ("team=ops", "role=prom"): ["TCP/80", "TCP/9090", "TCP/9100"],
    }


def test_a_peer_a_broader_one_already_covers_is_not_listed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Whether or not the model keeps subsumed peers, the explanation lists each once."""
    manifest = tmp_path / "web.yaml"
    manifest.write_text(
        """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - from:
        - namespaceSelector: {}
        - podSelector: {matchLabels: {app: admin}}
        - namespaceSelector: {matchLabels: {team: ops}}
          podSelector: {matchLabels: {role: prom}}
      ports: [{port: 8080}]
    - from:
        - namespaceSelector: {matchLabels: {team: ops}}
          podSelector: {matchLabels: {role: prom}}
        - namespaceSelector: {matchLabels: {team: ops}}
          podSelector: {matchExpressions: [{key: role, operator: In, values: [prom]}]}
      ports: [{port: 9090}]
"""
    )
    lines = run_explain(capsys, str(manifest)).splitlines()
    assert lines[1:5] == [
        "  ingress: isolated; allowed only from:",
        "    - every pod in every namespace on TCP 8080",
        "    - pods role=prom in namespaces team=ops on TCP 8080, 9090",
        "  egress: not restricted by this policy.",
    ]
    out = json.loads(run_explain(capsys, str(manifest), "--format", "json"))[0]
    assert [(f["peer"], f["ports"]) for f in out["ingress"]["allows"]] == [
        ({"namespaces": "*", "pods": "*"}, ["TCP/8080"]),
        ({"namespaces": "team=ops", "pods": "role=prom"}, ["TCP/8080", "TCP/9090"]),
    ]
