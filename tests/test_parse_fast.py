"""The fast path of parse_policy and its caches give exactly what the careful path gives.

``parse_policy`` first tries a fast path (exact types, the usual shapes, parts looked up in
caches keyed by ``marshal.dumps`` of the raw part) and hands anything else to the careful
path, which words every error. These tests hold the two to the same results: equal policies,
equal rule texts, equal origins, and for invalid objects the same exception with the same
message, whether the caches are cold or hold an identical-looking valid part.
"""

from __future__ import annotations

import collections
import copy
import enum
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import driftwatch.policy._fast_parse as fast_module
import driftwatch.policy.parse as parse_module
from driftwatch.policy import LAST_APPLIED, NetworkPolicy, PolicyError, parse_policy
from tests.strategies import as_served, network_policies, server_metas

SETTINGS = settings(max_examples=150, deadline=None)
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


class _Str(str):
    __slots__ = ()


class _List(list):  # type: ignore[type-arg]  # any element type, like the lists it stands for
    __slots__ = ()


class _Dict(dict):  # type: ignore[type-arg]  # any key and value, like the dicts it stands for
    __slots__ = ()


class _Port(enum.IntEnum):
    HTTP = 80


def _careful(obj: Any, default_namespace: str = "default") -> NetworkPolicy:
    return parse_module._careful_policy(obj, default_namespace)


def _texts(policy: NetworkPolicy) -> list[str | None]:
    return [rule.text for rule in policy.spec.ingress + policy.spec.egress]


def _rules(policy: NetworkPolicy) -> list[tuple[Any, ...]]:
    """Every rule's text and parts: ``PolicyRule.__eq__`` takes equal texts as equal rules
    without looking at the parts, and these tests must see parts built wrong."""
    return [(r.text, r.peers, r.ports) for r in policy.spec.ingress + policy.spec.egress]


def _outcome(parse: Any, obj: Any) -> tuple[Any, ...]:
    """What a parse gives, in a form to compare: the policy with what ``==`` leaves out
    (rule texts, origin), or the exception's type and message."""
    try:
        policy = parse(obj)
    except Exception as error:  # any exception: it must be the same on both paths
        return ("error", type(error), str(error))
    return ("ok", policy, _rules(policy), policy.origin, policy.source)


def _same_as_careful(obj: Any) -> None:
    expected = _outcome(_careful, copy.deepcopy(obj))
    assert _outcome(parse_policy, obj) == expected
    # Again, with the caches now holding whatever the first parse kept.
    assert _outcome(parse_policy, obj) == expected


@pytest.fixture(autouse=True)
def _cold_caches() -> Iterator[None]:
    fast_module.clear_caches()
    yield
    fast_module.clear_caches()


def _policy(rule: Any = None, *, egress: Any = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"podSelector": {"matchLabels": {"app": "web"}}, **spec}
    if rule is not None:
        body["ingress"] = [rule]
    if egress is not None:
        body["egress"] = [egress]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": body,
    }


RULE = {
    "from": [
        {"podSelector": {"matchLabels": {"1": "x", "role": "frontend"}}},
        {
            "namespaceSelector": {
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]
            }
        },
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
    ],
    "ports": [{"port": 80}, {"protocol": "UDP", "port": 53}, {"port": 8000, "endPort": 8080}],
}


# ---------------------------------------------------------------------------------------------
# Valid policies: the fast path takes them, and builds what the careful path builds.


@SETTINGS
@given(network_policies())
def test_fast_path_takes_valid_policies_as_written(obj: dict[str, Any]) -> None:
    fast = fast_module.fast_policy(copy.deepcopy(obj), "default")
    careful = _careful(obj)
    assert fast == careful
    assert _rules(fast) == _rules(careful)
    assert fast.origin == careful.origin


@SETTINGS
@given(network_policies(), server_metas())
def test_fast_path_takes_valid_policies_as_served(obj: dict[str, Any], meta: Any) -> None:
    served = as_served(obj, meta=meta)
    fast = fast_module.fast_policy(copy.deepcopy(served), "default")
    careful = _careful(served)
    assert fast == careful
    assert _rules(fast) == _rules(careful)
    assert fast.origin == careful.origin
    assert fast.annotations == careful.annotations
    assert all(key != LAST_APPLIED for key, _ in fast.annotations)


def test_rule_texts_are_canonical_json_of_the_raw_rules() -> None:
    egress = {"to": [{"ipBlock": {"cidr": "::/0"}}], "ports": [{"port": "dns", "protocol": "UDP"}]}
    obj = _policy(RULE, egress=egress)
    policy = parse_policy(obj)
    for rule, raw in ((policy.spec.ingress[0], RULE), (policy.spec.egress[0], egress)):
        assert rule.text == json.dumps(raw, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("ingress", None),
        ("ingress", {}),
        ("ingress", {"from": None}),
        ("ingress", {"ports": None}),
        ("ingress", {"from": None, "ports": None}),
        ("ingress", {"ports": [], "from": []}),
        ("ingress", {"ports": [{"port": 80}]}),
        ("egress", {"to": None, "ports": []}),
        ("egress", {"ports": [{"port": 53, "protocol": "UDP"}], "to": [{"podSelector": {}}]}),
        ("egress", {"to": [{"podSelector": {"matchLabels": {"a.b/c": "d_e"}}}], "ports": None}),
    ],
)
def test_null_and_empty_fields_keep_their_text(field: str, rule: Any) -> None:
    obj = _policy()
    obj["spec"][field] = [rule]
    _same_as_careful(obj)
    raw = {} if rule is None else rule
    assert _texts(parse_policy(obj)) == [json.dumps(raw, sort_keys=True, separators=(",", ":"))]


@pytest.mark.parametrize(
    "types",
    [
        None,
        [],
        ["Ingress"],
        ["Egress"],
        ["Egress", "Ingress"],
        ["Ingress", "Egress"],
        ["Ingress", "Ingress"],
        ["Egress", "Egress"],
        ["Ingress", "Egress", "Ingress"],
        ["ingress"],
        "Ingress",
        [1],
        [_Str("Egress")],
    ],
)
def test_policy_types(types: Any) -> None:
    spec: dict[str, Any] = {} if types is None else {"policyTypes": types}
    _same_as_careful(_policy(RULE, egress={"to": []}, **spec))
    _same_as_careful(_policy(RULE, **spec))


def test_equal_results_with_and_without_the_caches() -> None:
    objects = [_policy(RULE), _policy(RULE, egress={"to": RULE["from"]}), _policy(None)]
    cold = []
    for obj in objects:
        fast_module.clear_caches()
        cold.append(parse_policy(obj))
    warm = [parse_policy(obj) for obj in objects]
    again = [parse_policy(copy.deepcopy(obj)) for obj in objects]
    for a, b, c, obj in zip(cold, warm, again, objects, strict=True):
        assert a == b == c == _careful(obj)
        assert _rules(a) == _rules(b) == _rules(c) == _rules(_careful(obj))


def test_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_module, "_CACHE_LIMIT", 3)
    caches = [
        fast_module._PEERS,
        fast_module._PORTS,
        fast_module._PEER_LISTS,
        fast_module._PORT_LISTS,
        fast_module._SELECTORS,
        fast_module._LABELS,
    ]
    for i in range(1, 20):
        obj = _policy(
            {"from": [{"podSelector": {"matchLabels": {"n": str(i)}}}], "ports": [{"port": i}]}
        )
        obj["metadata"]["labels"] = {"n": str(i)}
        obj["spec"]["podSelector"] = {"matchLabels": {"n": str(i)}}
        _same_as_careful(obj)
        assert all(0 < len(cache) <= 3 for cache in caches)


# ---------------------------------------------------------------------------------------------
# An invalid part after a valid one that looks the same (same JSON text, equal under ==):
# the cache must not hand out the valid part's result.


@pytest.mark.parametrize(
    ("valid", "invalid"),
    [
        # YAML `1: x` is an int key; JSON writes it as "1"
        (
            {"from": [{"podSelector": {"matchLabels": {"1": "x"}}}]},
            {"from": [{"podSelector": {"matchLabels": {1: "x"}}}]},
        ),
        # a tuple is written as a JSON list, and is no list to the API
        ({"ports": [{"port": 80}]}, {"ports": ({"port": 80},)}),
        ({"from": [{"podSelector": {}}]}, {"from": ({"podSelector": {}},)}),
        (
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]},
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ("10.1.0.0/16",)}}]},
        ),
        # look-alikes that are no list or string at all
        (
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]},
            {
                "from": [
                    {
                        "ipBlock": {
                            "cidr": "10.0.0.0/8",
                            "except": collections.UserList(["10.1.0.0/16"]),
                        }
                    }
                ]
            },
        ),
        (
            {"from": [{"podSelector": {"matchLabels": {"a": "b"}}}]},
            {"from": [{"podSelector": {"matchLabels": {"a": collections.UserString("b")}}}]},
        ),
        ({"ports": [{"port": 1}]}, {"ports": [{"port": True}]}),  # 1 == True
        ({"ports": [{"port": 80}]}, {"ports": [{"port": 80.0}]}),  # 80 == 80.0
        ({"ports": [{"port": 80, "endPort": 81}]}, {"ports": [{"port": 80, "endPort": 81.0}]}),
        # a valid ingress rule is no valid egress rule
        ({"from": [{"podSelector": {}}]}, {"to": [{"podSelector": {}}]}),
    ],
)
def test_invalid_part_after_an_identical_looking_valid_one(valid: Any, invalid: Any) -> None:
    good = _policy(valid)
    bad = _policy(invalid)
    parse_policy(good)  # caches warm with the valid parts
    assert _outcome(parse_policy, bad) == _outcome(_careful, bad)
    with pytest.raises(PolicyError):
        parse_policy(bad)
    assert _outcome(parse_policy, good) == _outcome(_careful, good)


@pytest.mark.parametrize(
    "odd",
    [
        {"ports": [{"port": _Port.HTTP}]},  # an int subclass: a valid port
        {"ports": _List([{"port": 80}])},  # a list subclass: a valid list
        {"from": [_Dict({"podSelector": {}})]},  # a dict subclass: a valid mapping
        {"from": [{"podSelector": collections.UserDict({"matchLabels": {"a": "b"}})}]},
        {"from": [{"podSelector": {"matchLabels": {_Str("a"): _Str("b")}}}]},
        {"from": [{"podSelector": collections.OrderedDict(matchLabels={"a": "b"})}]},
    ],
)
def test_subclasses_the_careful_path_accepts_give_equal_results(odd: Any) -> None:
    plain = json.loads(json.dumps(odd, default=dict))
    parse_policy(_policy(plain))
    _same_as_careful(_policy(odd))
    assert parse_policy(_policy(odd)) == parse_policy(_policy(plain))


def test_an_invalid_part_is_never_cached() -> None:
    bad = _policy({"from": [{"podSelector": {"matchLabels": {"a": "-bad-"}}}]})
    first = _outcome(parse_policy, bad)
    assert first[0] == "error"
    assert _outcome(parse_policy, bad) == first == _outcome(_careful, bad)


def test_recursive_data_goes_to_the_careful_path() -> None:
    values: list[Any] = []
    values.append(values)
    obj = _policy(
        {
            "from": [
                {
                    "podSelector": {
                        "matchExpressions": [{"key": "a", "operator": "In", "values": values}]
                    }
                }
            ]
        }
    )
    assert _outcome(parse_policy, obj) == _outcome(_careful, obj)


# ---------------------------------------------------------------------------------------------
# Each check, at its edges: valid and invalid, after the caches saw the valid base policy.


def _peer(peer: Any) -> dict[str, Any]:
    return _policy({"from": [peer]})


def _port(port: Any) -> dict[str, Any]:
    return _policy({"ports": [port]})


def _selector(selector: Any) -> dict[str, Any]:
    return _policy({"from": [{"podSelector": selector}]})


def _block(block: Any) -> dict[str, Any]:
    return _policy(None, egress={"to": [{"ipBlock": block}]})


def _meta(**fields: Any) -> dict[str, Any]:
    obj = _policy(RULE)
    obj["metadata"].update(fields)
    return obj


def _top(**fields: Any) -> dict[str, Any]:
    return _policy(RULE) | fields


def _expr(**fields: Any) -> dict[str, Any]:
    return _selector({"matchExpressions": [fields]})


EDGES: list[dict[str, Any]] = [
    # ports
    _port({"port": 0}),
    _port({"port": 1}),
    _port({"port": 65535}),
    _port({"port": 65536}),
    _port({"port": -80}),
    _port({"port": "80"}),
    _port({"port": "http"}),
    _port({"port": "HTTP"}),
    _port({"port": "h--p"}),
    _port({"port": "-http"}),
    _port({"port": "a" * 15}),
    _port({"port": "a" * 16}),
    _port({"port": "123"}),
    _port({"port": None}),
    _port({}),
    _port({"port": 80, "endPort": 80}),
    _port({"port": 80, "endPort": 79}),
    _port({"port": 80, "endPort": 65535}),
    _port({"port": 80, "endPort": 65536}),
    _port({"port": 80, "endPort": True}),
    _port({"port": "http", "endPort": 90}),
    _port({"endPort": 90}),
    _port({"port": 80, "endPort": None}),
    _port({"port": 80, "protocol": "tcp"}),
    _port({"port": 80, "protocol": "SCTP"}),
    _port({"port": 80, "protocol": None}),
    _port({"port": 80, "protocol": ["TCP"]}),
    _port({"port": 80, "name": "x"}),
    _port(None),
    _port([]),
    # peers
    _peer({}),
    _peer(None),
    _peer({"podSelector": None}),
    _peer({"podSelector": None, "namespaceSelector": None, "ipBlock": None}),
    _peer({"namespaceSelector": {}}),
    _peer({"podSelector": {}, "namespaceSelector": {}}),
    _peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}),
    _peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}),
    _peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": None}),
    _peer({"podSelector": {}, "bogus": 1}),
    _peer({"podSelector": []}),
    # ipBlocks
    _block({"cidr": "10.0.0.0/8"}),
    _block({"cidr": "10.0.0.1/8"}),
    _block({"cidr": "10.0.0.1"}),
    _block({"cidr": "10.0.0.0/255.0.0.0"}),
    _block({"cidr": "10.0.0.0/33"}),
    _block({"cidr": ""}),
    _block({"cidr": None}),
    _block({}),
    _block({"cidr": "fd00::/8", "except": ["fd00::/16"]}),
    _block({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}),
    _block({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/9"]}),
    _block({"cidr": "10.0.0.0/8", "except": ["11.0.0.0/9"]}),
    _block({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/7"]}),
    _block({"cidr": "10.0.0.0/8", "except": ["fd00::/16"]}),
    _block({"cidr": "10.0.0.0/8", "except": ["10.1.0.0"]}),
    _block({"cidr": "10.0.0.0/8", "except": [""]}),
    _block({"cidr": "10.0.0.0/8", "except": [None]}),
    _block({"cidr": "10.0.0.0/8", "except": []}),
    _block({"cidr": "10.0.0.0/8", "except": None}),
    _block({"cidr": "10.0.0.0/8", "except": "10.1.0.0/16"}),
    _block({"cidr": "bad/8", "except": ["10.1.0.0/16"]}),
    _block({"cidr": "10.0.0.0/8", "bogus": []}),
    # selectors and their expressions
    _selector({}),
    _selector(None),
    _selector({"matchLabels": None, "matchExpressions": None}),
    _selector({"matchLabels": {}}),
    _selector({"matchLabels": {"a": ""}}),
    _selector({"matchLabels": {"a": "x" * 63}}),
    _selector({"matchLabels": {"a": "x" * 64}}),
    _selector({"matchLabels": {"a": "-x"}}),
    _selector({"matchLabels": {"": "x"}}),
    _selector({"matchLabels": {"a/b": "x"}}),
    _selector({"matchLabels": {"/b": "x"}}),
    _selector({"matchLabels": {"A_/b": "x"}}),
    _selector({"matchLabels": {"a/": "x"}}),
    _selector({"matchLabels": {"a": 1}}),
    _selector({"matchLabels": {"a": None}}),
    _selector({"matchLabels": {None: "x"}}),
    _selector({"matchLabels": []}),
    _selector({"matchExpressions": {}}),
    _selector({"bogus": {}}),
    _expr(key="a", operator="Exists"),
    _expr(key="a", operator="Exists", values=[]),
    _expr(key="a", operator="Exists", values=None),
    _expr(key="a", operator="Exists", values=["x"]),
    _expr(key="a", operator="DoesNotExist"),
    _expr(key="a", operator="DoesNotExist", values=["x"]),
    _expr(key="a", operator="In", values=["x", "y"]),
    _expr(key="a", operator="In", values=[]),
    _expr(key="a", operator="In"),
    _expr(key="a", operator="NotIn", values=["x"]),
    _expr(key="a", operator="NotIn", values=["-x"]),
    _expr(key="a", operator="NotIn", values=[1]),
    _expr(key="a", operator="NotIn", values="x"),
    _expr(key="a", operator="in", values=["x"]),
    _expr(key="a", operator=None),
    _expr(key="a", operator=["In"], values=["x"]),
    _expr(key="", operator="Exists"),
    _expr(key=None, operator="Exists"),
    _expr(key=1, operator="Exists"),
    _expr(key="-a", operator="Exists"),
    _expr(operator="Exists"),
    _expr(key="a", operator="Exists", bogus=1),
    _selector({"matchExpressions": [None]}),
    _selector({"matchExpressions": [[]]}),
    # rules
    _policy({"from": None, "ports": None}),
    _policy({"from": {}}),
    _policy({"ports": {}}),
    _policy({"to": []}),
    _policy({"from": [], "bogus": 1}),
    _policy([]),
    _policy("rule"),
    _policy(None, ingress=None, egress=None),
    _policy(None, ingress={}),
    _policy(None, egress=[]),
    _policy(None, ingress=[None]),
    # spec
    _top(spec=None),
    _top(spec={}),
    _top(spec=[]),
    _top(spec={"podSelector": None}),
    _top(spec={"podSelector": {"matchLabels": {"a": "b"}}, "bogus": 1}),
    _top(spec={"ingress": [{}], "egress": [{}]}),
    _top(spec={"egress": [{}]}),
    _top(spec={"egress": [], "policyTypes": None}),
    # metadata and the object itself
    _meta(name="a" * 253),
    _meta(name="a" * 254),
    _meta(name="Web"),
    _meta(name="web.shop"),
    _meta(name="web..shop"),
    _meta(name=""),
    _meta(name=None),
    _meta(name=1),
    _meta(namespace="a" * 63),
    _meta(namespace="a" * 64),
    _meta(namespace="a.b"),
    _meta(namespace=""),
    _meta(namespace=None),
    _meta(namespace=1),
    _meta(labels=None),
    _meta(labels={}),
    _meta(labels={"a": "b", "c/d": "e"}),
    _meta(labels={"a": "-b"}),
    _meta(labels={"a": 1}),
    _meta(labels=[]),
    _meta(annotations=None),
    _meta(annotations={"a": "anything at all: ✓", LAST_APPLIED: "{}"}),
    _meta(annotations={"a": 1}),
    _meta(annotations={1: "a"}),
    _meta(annotations="a"),
    _meta(managedFields=[{"manager": "m", "time": "2026-01-01T00:00:00Z"}, "x", None]),
    _meta(managedFields="x", resourceVersion=7),
    _meta(bogus=1),
    _top(metadata=None),
    _top(metadata=[]),
    _top(metadata={"name": "web"}),
    _top(apiVersion="networking.k8s.io/v1beta1"),
    _top(apiVersion=None),
    _top(kind="Pod"),
    _top(kind=None),
    _top(status={"anything": [1, 2]}),
    _top(bogus=1),
    {"metadata": {"name": "web"}},
]


@pytest.mark.parametrize("obj", EDGES)
def test_edges(obj: dict[str, Any]) -> None:
    parse_policy(_policy(RULE, egress={"to": RULE["from"], "ports": RULE["ports"]}))
    _same_as_careful(obj)
    _same_as_careful(_policy(RULE) | {"spec": obj.get("spec")})


def test_objects_that_are_no_mapping() -> None:
    for obj in (None, [], "x", 1, collections.UserDict(_policy(RULE))):
        _same_as_careful(obj)


# ---------------------------------------------------------------------------------------------
# Random damage to valid policies: both paths agree on every result and every message.

_NASTY: list[Any] = [
    None,
    0,
    1,
    -1,
    65536,
    True,
    False,
    1.5,
    80.0,
    float("nan"),
    "",
    "x",
    "-x-",
    "TCP",
    "In",
    "Ingress",
    "10.0.0.0/8",
    "10.0.0.1",
    [],
    {},
    [None],
    {"x": 1},
    ("a",),
    b"bytes",
]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def _damaged(value: Any, rnd: random.Random) -> Any:
    """``value`` with one kind of damage, or something else in its place."""
    choice = rnd.randrange(4)
    if choice == 0:
        return copy.deepcopy(rnd.choice(_NASTY))
    if isinstance(value, dict) and value:
        items = list(value.items())
        i = rnd.randrange(len(items))
        key, item = items[i]
        swap = rnd.choice(
            [
                lambda: [(k, v) for k, v in items if k != key],
                lambda: [*items, ("bogus", item)],
                lambda: [
                    (rnd.choice([collections.UserString(key), _Str(key), 1, None, True]), item),
                    *items[:i],
                    *items[i + 1 :],
                ],
            ]
        )()
        kind = rnd.choice([dict, dict, _Dict, collections.OrderedDict, collections.UserDict])
        return kind(swap)
    if isinstance(value, list):
        kind = rnd.choice([tuple, _List, collections.UserList, list])
        extra = [copy.deepcopy(rnd.choice(_NASTY))] if rnd.random() < 0.5 else []
        doubled = value[:1] if rnd.random() < 0.3 else []
        return kind(value + doubled + extra)
    if isinstance(value, str):
        return rnd.choice([_Str(value), collections.UserString(value), value.upper(), value + "-"])
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return rnd.choice([float(value), bool(value), str(value), -value, value + 65535])
    return rnd.choice(_NASTY)


def _put(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return obj


@settings(max_examples=400, deadline=None)
@given(network_policies(), st.booleans(), SEEDS)
def test_damaged_policies_fail_the_same_way(obj: dict[str, Any], served: bool, seed: int) -> None:
    rnd = random.Random(seed)  # noqa: S311 - test data, not crypto
    if served:
        obj = as_served(obj)
    parse_policy(copy.deepcopy(obj))  # the caches hold the undamaged parts
    for _ in range(rnd.randrange(1, 3)):
        path = rnd.choice(list(_paths(obj)))
        target = obj
        for step in path:
            target = target[step]
        obj = _put(obj, path, _damaged(target, rnd))
        if not isinstance(obj, dict):
            break
    expected = _outcome(_careful, copy.deepcopy(obj))
    assert _outcome(parse_policy, obj) == expected
    fast_module.clear_caches()
    assert _outcome(parse_policy, obj) == expected
