"""Unit tests of the connectivity model: intervals, ports, address space, selectors, views
and change sets.

Each group pins one piece of NetworkPolicy semantics with small, hand-written cases; the
property tests in ``test_semantic_properties.py`` check the same pieces over generated input.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

import pytest

from driftwatch.drift import compare
from driftwatch.policy import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    PolicyKey,
    PolicyPort,
    Requirement,
    parse_policy,
)
from driftwatch.rules import Direction, RuleEngine
from driftwatch.semantic import (
    ALL_PORTS,
    METADATA_API,
    PUBLIC,
    PUBLIC_V4,
    PUBLIC_V6,
    ChangeSet,
    PodPeer,
    PortSet,
    changes,
    view_of,
)
from driftwatch.semantic import intervals as iv
from driftwatch.semantic import selectors as sel
from driftwatch.semantic.ipspace import (
    ALL_IPS,
    ALL_V4,
    ALL_V6,
    V6_OFFSET,
    block_intervals,
    build_map,
    cidr_intervals,
    covered_ports,
    describe,
    map_addresses,
    subtract_maps,
    to_cidrs,
)
from driftwatch.semantic.model import EVERY_POD
from driftwatch.semantic.ports import NO_PORTS
from tests.builders import np

# ---------------------------------------------------------------------------------------------
# Intervals


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], ()),
        ([(5, 5)], ((5, 5),)),
        ([(3, 4), (1, 2)], ((1, 4),)),  # adjacent, unsorted
        ([(1, 2), (4, 5)], ((1, 2), (4, 5))),  # a gap of one stays
        ([(1, 10), (3, 4)], ((1, 10),)),  # contained
        ([(1, 5), (4, 8), (8, 9)], ((1, 9),)),  # overlapping chain
        ([(7, 9), (7, 9)], ((7, 9),)),  # duplicates
    ],
)
def test_normalise(pairs: list[tuple[int, int]], expected: iv.Intervals) -> None:
    assert iv.normalise(pairs) == expected


def test_union() -> None:
    assert iv.union((), ()) == ()
    assert iv.union(((1, 2),), ()) == ((1, 2),)
    assert iv.union((), ((1, 2),)) == ((1, 2),)
    assert iv.union(((1, 2),), ((3, 4),)) == ((1, 4),)  # adjacent merge
    assert iv.union(((1, 2),), ((4, 5),)) == ((1, 2), (4, 5))
    assert iv.union(((1, 10),), ((2, 3), (12, 12))) == ((1, 10), (12, 12))
    assert iv.union(((0, 0), (10, 10)), ((1, 9),)) == ((0, 10),)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((), ((1, 5),), ()),
        (((1, 5),), (), ((1, 5),)),
        (((1, 5),), ((1, 5),), ()),  # equal
        (((1, 5),), ((0, 9),), ()),  # covered
        (((1, 10),), ((4, 6),), ((1, 3), (7, 10))),  # a hole in the middle
        (((1, 10),), ((1, 1),), ((2, 10),)),  # the first element
        (((1, 10),), ((10, 10),), ((1, 9),)),  # the last element
        (((1, 10),), ((11, 20),), ((1, 10),)),  # adjacent above: nothing removed
        (((5, 10),), ((0, 4),), ((5, 10),)),  # adjacent below
        (((1, 10),), ((0, 2), (4, 4), (9, 12)), ((3, 3), (5, 8))),
        (((1, 3), (5, 8), (10, 12)), ((2, 11),), ((1, 1), (12, 12))),  # one b over many a
        (((0, 100),), ((10, 20), (30, 40), (50, 60)), ((0, 9), (21, 29), (41, 49), (61, 100))),
    ],
)
def test_subtract(a: iv.Intervals, b: iv.Intervals, expected: iv.Intervals) -> None:
    assert iv.subtract(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((), ((1, 5),), ()),
        (((1, 5),), (), ()),
        (((1, 5),), ((6, 9),), ()),  # adjacent: no common element
        (((1, 5),), ((5, 9),), ((5, 5),)),  # one common element
        (((1, 10),), ((3, 4),), ((3, 4),)),  # contained
        (((1, 3), (5, 8)), ((2, 6),), ((2, 3), (5, 6))),
        (((1, 3), (5, 8)), ((0, 20),), ((1, 3), (5, 8))),
    ],
)
def test_intersect(a: iv.Intervals, b: iv.Intervals, expected: iv.Intervals) -> None:
    assert iv.intersect(a, b) == expected
    assert iv.intersect(b, a) == expected


def test_contains() -> None:
    assert iv.contains((), ())
    assert iv.contains(((1, 5),), ())
    assert not iv.contains((), ((1, 1),))
    assert iv.contains(((1, 5),), ((1, 5),))
    assert iv.contains(((1, 5),), ((2, 3),))
    assert not iv.contains(((1, 5),), ((5, 6),))
    assert not iv.contains(((1, 2), (4, 5)), ((2, 4),))  # the gap at 3
    assert iv.contains(((1, 2), (4, 5)), ((1, 1), (5, 5)))


# ---------------------------------------------------------------------------------------------
# Ports


def ports(*specs: tuple[str, int | str | None] | tuple[str, int, int]) -> PortSet:
    """``ports(("TCP", 80), ("TCP", 8000, 8999), ("UDP", None), ("TCP", "http"))``."""
    out: list[PolicyPort] = []
    for spec in specs:
        if len(spec) == 3:
            out.append(PolicyPort(spec[0], spec[1], spec[2]))
        else:
            out.append(PolicyPort(spec[0], spec[1]))
    return PortSet.of(out)


def test_no_ports_means_every_port() -> None:
    assert PortSet.of([]) == ALL_PORTS
    assert PortSet.of([]).is_all
    assert ALL_PORTS.describe() == "all ports"
    assert ALL_PORTS.to_json() == ["all"]
    assert not NO_PORTS
    assert NO_PORTS.describe() == "no ports"
    assert NO_PORTS.to_json() == []


def test_of_numbers_ranges_and_protocols() -> None:
    p = ports(("TCP", 80), ("TCP", 443), ("TCP", 8000, 8999), ("UDP", 53))
    assert p.ranges == (("TCP", ((80, 80), (443, 443), (8000, 8999))), ("UDP", ((53, 53),)))
    assert not p.names
    assert p.has("TCP", 8500)
    assert not p.has("TCP", 9000)
    assert not p.has("SCTP", 80)
    # Order and adjacency do not matter.
    assert ports(("TCP", 81), ("TCP", 80)) == ports(("TCP", 80, 81))
    assert ports(("TCP", 80, 90), ("TCP", 85, 100)) == ports(("TCP", 80, 100))
    assert ports(("TCP", 80), ("TCP", 80)) == ports(("TCP", 80))
    # A protocol without a port is that protocol's every port.
    assert ports(("UDP", None)) == ports(("UDP", 1, 65535))
    assert ports(("TCP", None), ("UDP", None), ("SCTP", None)) == ALL_PORTS


def test_named_ports() -> None:
    http = ports(("TCP", "http"))
    assert http.names == frozenset({("TCP", "http")})
    assert http.ranges == ()
    assert http.covers(ports(("TCP", "http")))
    assert not http.covers(ports(("UDP", "http")))
    # A number may or may not be what the name resolves to on a pod: neither covers the other.
    assert not ports(("TCP", 80)).covers(http)
    assert not http.covers(ports(("TCP", 80)))
    assert not ports(("TCP", 1, 65534)).covers(http)
    # The protocol's whole range covers every name of that protocol (and only that protocol).
    assert ports(("TCP", None)).covers(http)
    assert ALL_PORTS.covers(http)
    assert not ports(("UDP", None)).covers(http)
    # A name is absorbed by its protocol's whole range.
    assert ports(("TCP", "http"), ("TCP", None)) == ports(("TCP", None))
    assert (http | ports(("TCP", None))) == ports(("TCP", None))
    assert not (http - ports(("TCP", None)))
    assert (http - ports(("TCP", 80))) == http
    assert (http - ports(("TCP", "metrics"))) == http
    assert not (http - http)
    assert (http & ports(("TCP", None))) == http
    assert (ports(("TCP", None)) & http) == http
    assert not (http & ports(("TCP", 80)))
    assert not (http & ports(("UDP", None)))
    assert (ALL_PORTS - http) == ALL_PORTS  # a name cannot punch a hole in a range


def test_union_difference_intersection() -> None:
    a = ports(("TCP", 80, 90), ("UDP", 53))
    b = ports(("TCP", 85, 100), ("SCTP", 7))
    assert (a | b) == ports(("TCP", 80, 100), ("UDP", 53), ("SCTP", 7))
    assert (a - b) == ports(("TCP", 80, 84), ("UDP", 53))
    assert (b - a) == ports(("TCP", 91, 100), ("SCTP", 7))
    assert (a & b) == ports(("TCP", 85, 90))
    assert (a | NO_PORTS) == a
    assert (NO_PORTS | a) == a
    assert (a - NO_PORTS) == a
    assert not (NO_PORTS - a)
    assert not (a - a)
    assert not (a & NO_PORTS)
    assert (a & ALL_PORTS) == a
    assert (ALL_PORTS - ALL_PORTS) == NO_PORTS
    assert a.covers(ports(("TCP", 82)))
    assert not a.covers(b)
    assert (a | b).covers(a)
    assert (a | b).covers(b)
    assert ALL_PORTS.covers(a)
    assert a.covers(NO_PORTS)


def test_describe_and_to_json() -> None:
    p = ports(("TCP", 80), ("TCP", 443), ("TCP", 8000, 8999), ("UDP", 53), ("TCP", "metrics"))
    assert p.describe() == 'TCP 80, 443, 8000-8999; UDP 53; TCP port "metrics"'
    assert p.to_json() == ["TCP/80", "TCP/443", "TCP/8000-8999", "UDP/53", "TCP/metrics"]
    assert ports(("TCP", None)).describe() == "all TCP ports"
    assert ports(("TCP", None)).to_json() == ["TCP/1-65535"]
    assert (ALL_PORTS - ports(("TCP", 22))).describe() == "all ports except TCP 22"
    assert (ALL_PORTS - ports(("UDP", 1, 1023))).describe() == "all ports except UDP 1-1023"
    assert ports(("SCTP", 7), ("UDP", 53)).describe() == "UDP 53; SCTP 7"  # protocol order fixed


# ---------------------------------------------------------------------------------------------
# Address space


def cidrs(*texts: str) -> iv.Intervals:
    return iv.normalise(r for t in texts for r in cidr_intervals(t))


def addr(text: str) -> int:
    a = ipaddress.ip_address(text)
    return int(a) if a.version == 4 else V6_OFFSET + int(a)


def has(space: iv.Intervals, text: str) -> bool:
    n = addr(text)
    return iv.contains(space, ((n, n),))


TCP80 = ports(("TCP", 80))
UDP53 = ports(("UDP", 53))


def test_cidr_halves_are_the_same_map() -> None:
    whole = build_map([(cidrs("10.0.0.0/8"), TCP80)])
    halves = build_map([(cidrs("10.0.0.0/9"), TCP80), (cidrs("10.128.0.0/9"), TCP80)])
    assert whole == halves
    assert whole == ((addr("10.0.0.0"), addr("10.255.255.255"), TCP80),)
    v6 = build_map([(cidrs("2001:db8::/32"), UDP53)])
    v6_halves = build_map([(cidrs("2001:db8::/33"), UDP53), (cidrs("2001:db8:8000::/33"), UDP53)])
    assert v6 == v6_halves
    # Host bits are ignored, as the API server's parser does.
    assert cidr_intervals("10.1.2.3/8") == cidr_intervals("10.0.0.0/8")


def test_build_map_merges_and_splits_runs_by_ports() -> None:
    m = build_map([(cidrs("10.0.0.0/8"), TCP80), (cidrs("10.0.0.0/9"), UDP53)])
    assert m == (
        (addr("10.0.0.0"), addr("10.127.255.255"), TCP80 | UDP53),
        (addr("10.128.0.0"), addr("10.255.255.255"), TCP80),
    )
    assert build_map([]) == ()
    assert build_map([(cidrs("10.0.0.0/8"), NO_PORTS)]) == ()
    # Written in any order, any number of times: the same map.
    again = build_map(
        [(cidrs("10.0.0.0/9"), UDP53), (cidrs("10.0.0.0/8"), TCP80), (cidrs("10.0.0.0/9"), UDP53)]
    )
    assert again == m
    assert map_addresses(m) == cidrs("10.0.0.0/8")


def test_ip_block_is_cidr_minus_excepts() -> None:
    block = IPBlock("10.0.0.0/8", ("10.1.0.0/16", "10.2.0.0/16"))
    assert block_intervals(block) == iv.subtract(
        cidrs("10.0.0.0/8"), cidrs("10.1.0.0/16", "10.2.0.0/16")
    )
    assert has(block_intervals(block), "10.0.255.255")
    assert not has(block_intervals(block), "10.1.0.0")
    assert not has(block_intervals(block), "10.2.255.255")
    assert has(block_intervals(block), "10.3.0.0")
    # Overlapping excepts remove their union.
    nested = IPBlock("10.0.0.0/8", ("10.0.0.0/16", "10.0.1.0/24"))
    assert block_intervals(nested) == iv.subtract(cidrs("10.0.0.0/8"), cidrs("10.0.0.0/16"))
    v6 = IPBlock("::/0", ("fc00::/7",))
    assert block_intervals(v6) == iv.subtract(ALL_V6, cidrs("fc00::/7"))


def test_ipv4_and_ipv6_are_disjoint() -> None:
    assert cidr_intervals("0.0.0.0/0") == ALL_V4
    assert cidr_intervals("::/0") == ALL_V6
    assert iv.union(ALL_V4, ALL_V6) == ALL_IPS
    assert not iv.intersect(ALL_V4, ALL_V6)
    # IPv4-mapped IPv6 addresses are IPv6 addresses here, as for the API server.
    assert not iv.intersect(cidrs("::ffff:0:0/96"), ALL_V4)
    assert has(ALL_V6, "::")
    assert has(ALL_V4, "255.255.255.255")


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.0",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.255",
        "127.0.0.1",
        "169.254.169.254",
        "fc00::1",
        "fd12:3456::1",
        "::1",
        "fe80::1",
        "febf:ffff::1",
    ],
)
def test_public_excludes_private_space(address: str) -> None:
    assert not has(PUBLIC, address)


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "100.63.255.255",
        "100.128.0.0",
        "2001:4860:4860::8888",
        "fec0::1",
        "fbff::1",
        "::2",
    ],
)
def test_public_includes_the_rest(address: str) -> None:
    assert has(PUBLIC, address)


def test_public_families() -> None:
    assert iv.union(PUBLIC_V4, PUBLIC_V6) == PUBLIC
    assert iv.contains(ALL_V4, PUBLIC_V4)
    assert iv.contains(ALL_V6, PUBLIC_V6)
    private_v4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
    local_v4 = ("127.0.0.0/8", "169.254.0.0/16")
    expected_v4 = iv.subtract(ALL_V4, cidrs(*private_v4, *local_v4))
    expected_v6 = iv.subtract(ALL_V6, cidrs("fc00::/7", "::1/128", "fe80::/10"))
    assert expected_v4 == PUBLIC_V4
    assert expected_v6 == PUBLIC_V6


def test_metadata_api() -> None:
    expected = iv.normalise([(addr("169.254.169.254"),) * 2, (addr("fd00:ec2::254"),) * 2])
    assert expected == METADATA_API
    assert not iv.intersect(METADATA_API, PUBLIC)


@pytest.mark.parametrize(
    ("space", "text"),
    [
        (ALL_V4, "0.0.0.0/0"),
        (ALL_V6, "::/0"),
        (ALL_IPS, "0.0.0.0/0 and ::/0"),
        ((), "no address"),
        (cidrs("10.0.0.0/24"), "10.0.0.0/24"),
        (cidrs("10.0.0.0/24", "192.168.0.0/16"), "10.0.0.0/24, 192.168.0.0/16"),
        (cidrs("10.0.0.0/9", "10.128.0.0/9"), "10.0.0.0/8"),
        (iv.subtract(ALL_V4, cidrs("10.0.0.0/8")), "every IPv4 address except 10.0.0.0/8"),
        (
            iv.subtract(ALL_V4, cidrs("10.0.0.0/8", "192.168.0.0/16")),
            "every IPv4 address except 10.0.0.0/8, 192.168.0.0/16",
        ),
        (iv.subtract(ALL_V6, cidrs("fc00::/7")), "every IPv6 address except fc00::/7"),
        (
            iv.union(cidrs("10.0.0.0/8"), iv.subtract(ALL_V6, cidrs("fe80::/10"))),
            "10.0.0.0/8 and every IPv6 address except fe80::/10",
        ),
        (cidrs("10.0.0.0/32", "10.0.0.1/32"), "10.0.0.0/31"),
        (cidrs("2001:db8::1/128"), "2001:db8::1/128"),
    ],
)
def test_describe_addresses(space: iv.Intervals, text: str) -> None:
    assert describe(space) == text


def test_describe_many_ranges_is_cut_short() -> None:
    many = cidrs(*(f"10.0.{i * 2}.0/24" for i in range(8)))
    assert describe(many) == (
        "10.0.0.0/24, 10.0.2.0/24, 10.0.4.0/24, 10.0.6.0/24, 10.0.8.0/24, 10.0.10.0/24 "
        "and 2 more ranges"
    )
    assert describe(many, limit=8).count(",") == 7


def test_to_cidrs() -> None:
    assert to_cidrs(ALL_IPS) == ["0.0.0.0/0", "::/0"]
    assert to_cidrs(((addr("10.0.0.1"), addr("10.0.0.6")),)) == [
        "10.0.0.1/32",
        "10.0.0.2/31",
        "10.0.0.4/31",
        "10.0.0.6/32",
    ]
    assert to_cidrs(()) == []


def test_covered_ports() -> None:
    m = build_map([(cidrs("10.0.0.0/8"), TCP80 | UDP53), (cidrs("10.0.0.0/9"), ports(("TCP", 22)))])
    assert covered_ports(m, cidrs("10.0.0.0/8")) == TCP80 | UDP53
    assert covered_ports(m, cidrs("10.0.0.0/16")) == TCP80 | UDP53 | ports(("TCP", 22))
    assert covered_ports(m, cidrs("10.128.0.0/9")) == TCP80 | UDP53
    # One address outside the map: nothing is open to the whole space.
    assert covered_ports(m, cidrs("10.0.0.0/7")) == NO_PORTS
    assert covered_ports(m, ()) == NO_PORTS
    assert covered_ports((), ALL_V4) == NO_PORTS
    # A map with disjoint port sets over the space has nothing in common.
    split = build_map([(cidrs("10.0.0.0/9"), TCP80), (cidrs("10.128.0.0/9"), UDP53)])
    assert covered_ports(split, cidrs("10.0.0.0/8")) == NO_PORTS
    world = build_map([(ALL_IPS, ALL_PORTS)])
    assert covered_ports(world, PUBLIC_V4) == ALL_PORTS


def test_subtract_maps() -> None:
    a = build_map([(cidrs("10.0.0.0/8"), ALL_PORTS)])
    b = build_map([(cidrs("10.0.0.0/9"), TCP80)])
    assert subtract_maps(a, b) == (
        (addr("10.0.0.0"), addr("10.127.255.255"), ALL_PORTS - TCP80),
        (addr("10.128.0.0"), addr("10.255.255.255"), ALL_PORTS),
    )
    assert subtract_maps(b, a) == ()
    assert subtract_maps(a, a) == ()
    assert subtract_maps(a, ()) == a
    assert subtract_maps((), a) == ()
    # Runs of b outside a change nothing; runs that only touch a's edge neither.
    c = build_map([(cidrs("11.0.0.0/8", "9.0.0.0/8"), ALL_PORTS)])
    assert subtract_maps(a, c) == a
    # The result is canonical: equal neighbours are merged.
    d = build_map([(cidrs("10.0.0.0/9"), TCP80 | UDP53), (cidrs("10.128.0.0/9"), TCP80)])
    assert subtract_maps(d, build_map([(cidrs("10.0.0.0/9"), UDP53)])) == build_map(
        [(cidrs("10.0.0.0/8"), TCP80)]
    )


# ---------------------------------------------------------------------------------------------
# Selectors


def selector(labels: dict[str, str] | None = None, *exprs: tuple[str, str, tuple[str, ...]]) -> Any:
    """``selector({"app": "web"}, ("tier", "In", ("a", "b")))`` as a canonical selector."""
    return sel.canonical(
        LabelSelector(
            tuple(sorted((labels or {}).items())),
            tuple(Requirement(k, op, v) for k, op, v in exprs),  # type: ignore[arg-type]
        )
    )


def test_canonical_equality_of_equal_selectors() -> None:
    assert selector({"a": "1"}) == selector(None, ("a", "In", ("1",)))
    assert selector(None, ("a", "In", ("1", "2"))) == selector(None, ("a", "In", ("2", "1", "2")))
    assert selector(None, ("a", "In", ("1", "2")), ("a", "In", ("2", "3"))) == selector({"a": "2"})
    assert selector(None, ("a", "Exists", ()), ("a", "In", ("1",))) == selector({"a": "1"})
    assert selector(None, ("a", "NotIn", ("1",)), ("a", "NotIn", ("2",))) == selector(
        None, ("a", "NotIn", ("2", "1"))
    )
    assert selector(None, ("a", "DoesNotExist", ()), ("a", "NotIn", ("1",))) == selector(
        None, ("a", "DoesNotExist", ())
    )
    assert selector({"a": "1"}, ("a", "NotIn", ("2",))) == selector({"a": "1"})
    assert selector({"b": "2", "a": "1"}) == selector(
        None, ("b", "In", ("2",)), ("a", "In", ("1",))
    )
    assert selector() == ()
    assert selector({"a": "1"}) != selector({"a": "2"})
    assert selector(None, ("a", "Exists", ())) != selector(None, ("a", "NotIn", ("1",)))


def test_contains_is_exact() -> None:
    web = selector({"app": "web", "tier": "front"})
    assert sel.contains(selector({"app": "web"}), web)  # one key dropped: a superset
    assert not sel.contains(web, selector({"app": "web"}))
    assert sel.contains(selector(), web)
    assert not sel.contains(web, selector())
    in_ab = selector(None, ("k", "In", ("a", "b")))
    in_a = selector(None, ("k", "In", ("a",)))
    assert sel.contains(in_ab, in_a)
    assert not sel.contains(in_a, in_ab)
    assert sel.contains(selector(None, ("k", "Exists", ())), in_ab)
    assert not sel.contains(in_ab, selector(None, ("k", "Exists", ())))
    assert sel.contains(in_ab, in_ab)


def test_not_in_also_matches_a_missing_key() -> None:
    not_a = selector(None, ("k", "NotIn", ("a",)))
    missing = selector(None, ("k", "DoesNotExist", ()))
    assert sel.contains(not_a, missing)
    assert sel.contains(not_a, selector(None, ("k", "In", ("b",))))
    assert sel.contains(not_a, selector(None, ("k", "NotIn", ("a", "b"))))
    assert not sel.contains(not_a, selector(None, ("k", "In", ("a", "b"))))
    assert not sel.contains(not_a, selector())  # {} includes pods with k=a
    assert not sel.contains(not_a, selector(None, ("k", "Exists", ())))
    assert not sel.contains(selector(None, ("k", "Exists", ())), not_a)  # absent k
    assert not sel.contains(selector(None, ("k", "NotIn", ("a", "b"))), not_a)
    # Pods without the key at all are selected by NotIn, as by the API server.
    assert LabelSelector((), (Requirement("k", "NotIn", ("a",)),)).matches({})
    assert sel.contains(not_a, selector({"other": "x"}, ("k", "DoesNotExist", ())))


def test_exists_and_does_not_exist_are_disjoint() -> None:
    exists = selector(None, ("k", "Exists", ()))
    absent = selector(None, ("k", "DoesNotExist", ()))
    assert selector(None, ("k", "Exists", ()), ("k", "DoesNotExist", ())) is None
    assert not sel.contains(exists, absent)
    assert not sel.contains(absent, exists)
    assert selector({"k": "v"}, ("k", "DoesNotExist", ())) is None
    assert selector(None, ("k", "In", ("v",)), ("k", "DoesNotExist", ())) is None


def test_unsatisfiable_selector_selects_nothing() -> None:
    nothing = selector(None, ("k", "In", ("a",)), ("k", "In", ("b",)))
    assert nothing is None
    assert selector({"k": "a"}, ("k", "NotIn", ("a",))) is None
    assert sel.contains(nothing, None)
    assert sel.contains(selector({"x": "y"}), nothing)
    assert not sel.contains(nothing, selector({"x": "y"}))
    assert not sel.contains(nothing, selector())
    assert sel.describe(nothing) == "nothing"
    assert sel.split_in(nothing) == []


def test_split_in() -> None:
    in_ab = selector({"x": "1"}, ("k", "In", ("b", "a")))
    assert sel.split_in(in_ab) == [
        selector({"x": "1", "k": "a"}),
        selector({"x": "1", "k": "b"}),
    ]
    two_keys = selector(None, ("j", "In", ("1", "2")), ("k", "In", ("a", "b", "c")))
    assert len(sel.split_in(two_keys)) == 6
    assert set(sel.split_in(two_keys)) == {
        selector({"j": j, "k": k}) for j in ("1", "2") for k in ("a", "b", "c")
    }
    # Splits only within the limit; what is not split stays whole.
    assert sel.split_in(two_keys, limit=2) == [
        selector({"j": "1"}, ("k", "In", ("a", "b", "c"))),
        selector({"j": "2"}, ("k", "In", ("a", "b", "c"))),
    ]
    for whole in (
        selector(),
        selector({"k": "a"}),
        selector(None, ("k", "NotIn", ("a", "b"))),
        selector(None, ("k", "DoesNotExist", ())),
        selector(None, ("k", "Exists", ())),
    ):
        assert sel.split_in(whole) == [whole]


def test_describe_selectors() -> None:
    assert sel.describe(selector({"app": "web"})) == "app=web"
    assert sel.describe(selector(None, ("k", "In", ("b", "a")))) == "k in (a,b)"
    assert sel.describe(selector(None, ("k", "NotIn", ("a",)))) == "k notin (a)"
    assert sel.describe(selector(None, ("k", "Exists", ()))) == "k"
    assert sel.describe(selector(None, ("k", "DoesNotExist", ()))) == "!k"
    both = selector(None, ("k", "Exists", ()), ("k", "NotIn", ("a",)))
    assert sel.describe(both) == "k notin (a) and set"
    assert sel.describe(selector()) == ""


# ---------------------------------------------------------------------------------------------
# Policy views and change sets

DB = {"matchLabels": {"app": "db"}}
API = {"matchLabels": {"app": "api"}}
KEY = PolicyKey("default", "shop", "web")


def policy(**spec: Any) -> NetworkPolicy:
    return np(spec={"podSelector": DB, **spec})


def ingress(*rules: dict[str, Any], **spec: Any) -> NetworkPolicy:
    return policy(ingress=list(rules), **spec)


def lines(flows: tuple[Any, ...]) -> set[str]:
    return {f.describe("~") for f in flows}


def cs(desired: NetworkPolicy | None, live: NetworkPolicy | None) -> ChangeSet:
    return changes(
        view_of(desired) if desired is not None else None,
        view_of(live) if live is not None else None,
    )


def test_stray_dash_turns_and_into_or_and_adds_flows() -> None:
    both = ingress(
        {"from": [{"podSelector": API, "namespaceSelector": {"matchLabels": {"t": "x"}}}]}
    )
    stray = ingress(
        {"from": [{"podSelector": API}, {"namespaceSelector": {"matchLabels": {"t": "x"}}}]}
    )
    change = cs(both, stray)
    assert not change.equivalent
    assert not change.removed
    assert lines(change.added) == {
        "ingress to pods app=db in shop from pods app=api in shop on all ports ~",
        "ingress to pods app=db in shop from every pod in namespaces t=x on all ports ~",
    }
    # And back: the AND is narrower than either half, so the flows are lost, none gained.
    back = cs(stray, both)
    assert not back.added
    assert lines(back.removed) == lines(change.added)
    findings = compare(KEY, both, stray, RuleEngine()).findings
    assert {f.rule for f in findings} >= {"traffic-allowed", "peer-selector-broadened"}
    assert not [f for f in findings if f.direction is Direction.ISOLATION]


def test_and_peer_is_one_pod_peer() -> None:
    both = ingress(
        {"from": [{"podSelector": API, "namespaceSelector": {"matchLabels": {"t": "x"}}}]}
    )
    (entry,) = view_of(both).ingress.pods
    assert entry == (PodPeer(selector({"t": "x"}), selector({"app": "api"})), ALL_PORTS)


def test_own_namespace_is_the_name_label_selector() -> None:
    own = ingress({"from": [{"podSelector": API}], "ports": [{"port": 5432}]})
    named = ingress(
        {
            "from": [
                {
                    "podSelector": API,
                    "namespaceSelector": {"matchLabels": {sel.NAME_LABEL: "shop"}},
                }
            ],
            "ports": [{"port": 5432, "protocol": "TCP"}],
        }
    )
    assert cs(own, named).equivalent
    assert cs(named, own).equivalent
    (entry,) = view_of(own).ingress.pods
    assert entry[0].namespaces == sel.name_selector("shop")
    assert entry[0].describe("shop") == "pods app=api in shop"
    other = ingress(
        {
            "from": [
                {"podSelector": API, "namespaceSelector": {"matchLabels": {sel.NAME_LABEL: "dev"}}}
            ],
            "ports": [{"port": 5432}],
        }
    )
    assert not cs(own, other).equivalent
    (moved,) = cs(own, other).added
    assert moved.peer_text() == "pods app=api in namespace dev"


def test_separate_peers_equal_one_in_selector() -> None:
    two = ingress(
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"team": "a"}}},
                {"namespaceSelector": {"matchLabels": {"team": "b"}}},
            ]
        }
    )
    one = ingress(
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {"key": "team", "operator": "In", "values": ["b", "a"]}
                        ]
                    }
                }
            ]
        }
    )
    assert cs(two, one).equivalent
    assert cs(one, two).equivalent
    only_a = ingress({"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]})
    change = cs(only_a, one)
    assert not change.equivalent
    assert lines(change.added) == {
        "ingress to pods app=db in shop from every pod in namespaces team=b on all ports ~"
    }


def test_duplicated_rule_is_equivalent() -> None:
    rule = {"from": [{"podSelector": API}], "ports": [{"port": 80}]}
    once = ingress(rule)
    twice = ingress(rule, rule)
    assert cs(once, twice).equivalent
    assert cs(twice, once).equivalent
    assert view_of(twice).ingress.rules == 2
    findings = compare(KEY, once, twice, RuleEngine()).findings
    assert [f.rule for f in findings] == ["cosmetic"]


def test_split_cidr_is_equivalent() -> None:
    whole = ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443}]})
    halves = ingress(
        {
            "from": [{"ipBlock": {"cidr": "10.128.0.0/9"}}, {"ipBlock": {"cidr": "10.0.0.0/9"}}],
            "ports": [{"port": 443}],
        }
    )
    assert cs(whole, halves).equivalent
    assert [f.rule for f in compare(KEY, whole, halves, RuleEngine()).findings] == ["cosmetic"]


def test_empty_from_is_every_pod_and_every_address() -> None:
    view = view_of(ingress({"ports": [{"port": 80}]}))
    assert view.ingress.pods == frozenset({(EVERY_POD, TCP80)})
    assert view.ingress.ips == ((0, ALL_IPS[0][1], TCP80),)
    # namespaceSelector {} is every pod, and no address outside the cluster.
    ns_all = view_of(ingress({"from": [{"namespaceSelector": {}}], "ports": [{"port": 80}]}))
    assert ns_all.ingress.pods == frozenset({(EVERY_POD, TCP80)})
    assert ns_all.ingress.ips == ()
    change = cs(ingress({"from": [{"namespaceSelector": {}}]}), ingress({}))
    assert lines(change.added) == {
        "ingress to pods app=db in shop from 0.0.0.0/0 and ::/0 on all ports ~"
    }
    assert not change.removed


def test_direction_without_rules_denies_all() -> None:
    view = view_of(policy(policyTypes=["Ingress", "Egress"]))
    assert view.ingress.deny_all
    assert view.egress.deny_all
    default = view_of(policy())  # policyTypes defaults to Ingress only
    assert default.ingress.deny_all
    assert not default.egress.isolated
    assert not default.egress.deny_all


def test_dropping_a_policy_type_stops_isolation_and_allows_nothing() -> None:
    rule = {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 53, "protocol": "UDP"}]}
    kept = policy(policyTypes=["Ingress", "Egress"], egress=[rule])
    dropped = policy(policyTypes=["Ingress"], egress=[rule])
    view = view_of(dropped)
    assert not view.egress.isolated
    assert view.egress.rules == 1
    assert view.egress.pods == frozenset()
    assert view.egress.ips == ()
    assert view_of(kept).egress.ips
    change = cs(kept, dropped)
    assert not change.equivalent
    # The lost allowance is not an isolation: the pods are no longer isolated by this policy.
    assert not change.added
    assert not change.removed
    rules = {f.rule for f in compare(KEY, kept, dropped, RuleEngine()).findings}
    assert "isolation-removed" in rules
    assert "traffic-blocked" not in rules
    # The other way, the policy newly isolates egress and allows (only) that flow.
    back = cs(dropped, kept)
    assert lines(back.added) == {"egress from pods app=db in shop to 10.0.0.0/8 on UDP 53 ~"}
    assert not back.removed


def test_ip_block_never_matches_by_selector() -> None:
    view = view_of(ingress({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}))
    assert view.ingress.pods == frozenset()
    assert view.ingress.ips == ((0, ALL_V4[0][1], ALL_PORTS),)


def test_a_peer_a_broader_one_already_allows_adds_nothing() -> None:
    redundant = view_of(
        ingress(
            {"from": [{"namespaceSelector": {}}], "ports": [{"port": 80}]},
            {"from": [{"podSelector": API}], "ports": [{"port": 80}, {"port": 443}]},
        )
    )
    lean = view_of(
        ingress(
            {"from": [{"namespaceSelector": {}}], "ports": [{"port": 80}]},
            {"from": [{"podSelector": API}], "ports": [{"port": 443}]},
        )
    )
    shop = sel.name_selector("shop")
    assert shop is not None
    api = PodPeer(shop, selector({"app": "api"}))
    assert redundant.ingress.pod_allowance(api) == ports(("TCP", 80), ("TCP", 443))
    assert redundant.ingress.pod_allowance(EVERY_POD) == TCP80
    assert changes(redundant, lean).equivalent
    assert changes(lean, redundant).equivalent


def test_unsatisfiable_peer_allows_nothing() -> None:
    nothing = {
        "matchLabels": {"a": "1"},
        "matchExpressions": [{"key": "a", "operator": "DoesNotExist"}],
    }
    view = view_of(ingress({"from": [{"podSelector": nothing}]}))
    assert view.ingress.deny_all


def test_absent_side_is_no_policy() -> None:
    p = ingress({"from": [{"podSelector": API}], "ports": [{"port": 80}]})
    missing = cs(p, None)
    assert not missing.added
    assert lines(missing.removed) == {
        "ingress to pods app=db in shop from pods app=api in shop on TCP 80 ~"
    }
    unmanaged = cs(None, p)
    assert lines(unmanaged.added) == lines(missing.removed)
    assert not unmanaged.removed
    assert not missing.equivalent
    assert ChangeSet(None, None, (), ()).equivalent


def test_target_change_is_not_equivalent() -> None:
    a = np(spec={"podSelector": DB})
    b = np(spec={"podSelector": {"matchLabels": {"app": "db", "tier": "x"}}})
    assert not cs(a, b).equivalent
    assert not cs(b, a).equivalent
    assert cs(a, a).equivalent


def test_allowances_count_only_where_the_other_side_selects_all_pods() -> None:
    rule = {"from": [{"podSelector": API}], "ports": [{"port": 80}]}
    wide = np(spec={"podSelector": {}, "ingress": [rule]})
    narrow = np(spec={"podSelector": DB, "ingress": [rule]})
    # Git selects every pod, the cluster only app=db: the app=db pods keep their allowance.
    assert not cs(wide, narrow).added
    # The other way round, the new pods gain the allowance: it counts as added.
    assert lines(cs(narrow, wide).added) == {
        "ingress to every pod in shop from pods app=api in shop on TCP 80 ~"
    }


def test_named_port_is_not_a_number() -> None:
    named = ingress({"from": [{"podSelector": API}], "ports": [{"port": "http"}]})
    numbered = ingress({"from": [{"podSelector": API}], "ports": [{"port": 80}]})
    change = cs(named, numbered)
    assert not change.equivalent
    assert lines(change.added) == {
        "ingress to pods app=db in shop from pods app=api in shop on TCP 80 ~"
    }
    assert lines(change.removed) == {
        'ingress to pods app=db in shop from pods app=api in shop on TCP port "http" ~'
    }


def test_flow_text_reads_in_the_direction_of_traffic() -> None:
    out = policy(
        policyTypes=["Egress"],
        egress=[{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 443}]}],
    )
    (flow,) = cs(None, out).added
    assert flow.describe("is now allowed") == (
        "egress from pods app=db in shop to 203.0.113.0/24 on TCP 443 is now allowed"
    )
    assert flow.to_json() == {
        "direction": "egress",
        "selected_pods": "pods app=db in shop",
        "peer": {"cidrs": ["203.0.113.0/24"]},
        "ports": ["TCP/443"],
    }
    into = ingress({"from": [{"podSelector": API}], "ports": [{"port": 5432}]})
    (flow,) = cs(None, into).added
    assert flow.describe("is now allowed") == (
        "ingress to pods app=db in shop from pods app=api in shop on TCP 5432 is now allowed"
    )
    assert flow.to_json()["peer"] == {"namespaces": f"{sel.NAME_LABEL}=shop", "pods": "app=api"}
    (every,) = cs(None, ingress({"from": [{"namespaceSelector": {}}]})).added
    assert every.to_json()["peer"] == {"namespaces": "*", "pods": "*"}
    assert every.to_json()["ports"] == ["all"]


def test_reordered_ignored_rules_are_only_cosmetic() -> None:
    dns = {"ports": [{"port": 53, "protocol": "UDP"}]}
    web = {"ports": [{"port": 80}]}
    a = policy(policyTypes=["Ingress"], egress=[dns, web])
    b = policy(policyTypes=["Ingress"], egress=[web, dns, web])
    assert cs(a, b).equivalent
    assert [f.rule for f in compare(KEY, a, b, RuleEngine()).findings] == ["cosmetic"]


IGNORED: dict[str, Any] = {
    "to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"podSelector": {}}],
    "ports": [{"port": 53, "protocol": "UDP"}],
}


@pytest.mark.parametrize(
    "rewritten",
    [
        {**IGNORED, "to": IGNORED["to"][::-1]},
        {
            **IGNORED,
            "to": [
                {"ipBlock": {"cidr": "10.128.0.0/9"}},
                {"ipBlock": {"cidr": "10.0.0.0/9"}},
                {"podSelector": {}},
            ],
        },
    ],
    ids=["peers-reordered", "cidr-split"],
)
def test_rewritten_ignored_rules_are_only_cosmetic(rewritten: dict[str, Any]) -> None:
    a = policy(policyTypes=["Ingress"], egress=[IGNORED])
    b = policy(policyTypes=["Ingress"], egress=[rewritten])
    assert cs(a, b).equivalent
    assert [f.rule for f in compare(KEY, a, b, RuleEngine()).findings] == ["cosmetic"]


def test_a_rule_changed_after_parsing_is_analysed_afresh() -> None:
    """Parsed rules carry their text so the model can reuse its work by a string lookup; a
    rule changed afterwards (``dataclasses.replace``) must not inherit that text."""
    policy = parse_policy(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "podSelector": {},
                "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}]}],
            },
        }
    )
    rule = policy.spec.ingress[0]
    assert rule.text is not None
    before = view_of(policy)
    changed = replace(rule, ports=(PolicyPort("TCP", 443),))
    assert changed.text is None
    after = view_of(replace(policy, spec=replace(policy.spec, ingress=(changed,))))
    ((_, ports_before),) = before.ingress.pods
    ((_, ports_after),) = after.ingress.pods
    assert ports_before.describe() == "TCP 80"
    assert ports_after.describe() == "TCP 443"
