"""The ryaml path of ``parse_yaml`` gives exactly what the exact (PyYAML) path gives.

Every test compares ``parse_yaml`` with ``_exact`` (PyYAML composing and constructing
nodes): the same documents, lines, ``List`` item lines and data, down to the types,
key order and the sign of zero; or the same error. Where it matters, it also checks
that the ryaml path itself (``_ryaml_path``) was taken or declined.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from driftwatch.manifests import _yaml
from driftwatch.manifests._yaml import DuplicateKeyError, _exact, _ryaml_path, parse_yaml
from tests.strategies import ServerMeta, as_served, network_policies, server_metas


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down, keys in the same order; nan == nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(
            same(ka, kb) and same(a[ka], b[kb]) for ka, kb in zip(a, b, strict=True)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def outcome(parse: Any, text: str) -> tuple[str, Any]:
    try:
        return ("ok", parse(text))
    except (yaml.YAMLError, DuplicateKeyError, ValueError, RecursionError) as error:
        line = getattr(error, "line", None)
        return ("error", (type(error), str(error), line))


def assert_agrees(text: str) -> list[_yaml.ParsedDocument] | None:
    """``parse_yaml`` == ``_exact``; returns what the ryaml path gave (None: declined)."""
    expected = outcome(_exact, text)
    got = outcome(parse_yaml, text)
    assert got[0] == expected[0], (text, got, expected)
    if got[0] == "ok":
        assert same(got[1], expected[1]), (text, got[1], expected[1])
    else:
        assert got[1] == expected[1], (text, got[1], expected[1])
    try:
        fast = _ryaml_path(text)
    except Exception as error:  # the ryaml path must never raise
        pytest.fail(f"_ryaml_path raised {error!r} on {text!r}")
    if fast is not None:
        assert expected[0] == "ok", (text, fast, expected)
        assert same(fast, expected[1]), (text, fast, expected[1])
    return fast


# --- targeted cases -------------------------------------------------------------------

TAKEN = [
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n",
    "a: 1\n---\nb: 2\n",
    "# leading\n---\n---\napiVersion: v1\n---\n# inside\n\nkind: A\n---\n...\n---\nkind: B\n",
    "a: 1\n...\n---\nb: 2\n...\n",
    "a: 1\n... # end\n# after\n---\nb: 2",
    "---\n",
    "---",
    "--- \n---\t\n",
    "a: b\n---\n  ",
    "--- # c\n\n# d\na: 1\n",
    "--- foo\n",
    "--- |\n  text\n  more\n---\n",
    "--- >-\n folded\n line\n",
    "--- 'quoted'\n",
    "a: |\n  line one\n  --- not a marker\n  ...\nb: >\n  folded\n\n  text\n",
    "a: |-\n  x\nb: |+\n  y\n\nc: 1\n",
    'a: "--- x"\nb: \'--- y\'\nc: "x\\n---\\ny"\n',
    'a: "line one\n  line two\n\n  three"\n',
    "a: plain\n  continued\n  more\n",
    "a: {b: 1, c: [x, y, {d: e}]}\n",
    "[1, 2, {a: b}]\n",
    "{a: [], b: {}, c: ''}\n",
    "a:\n- 1\n- - 2\n  - 3\n-\n- ~\n",
    "- a: 1\n  b: 2\n- c: 3\n",
    "a: 1\r\nb:\r\n  - x\r\n  - y\r\n---\r\nc: 'q'\r\n",
    "a:\t1\nb: \tx\t\nc: x\ty\n",
    "a: 8080\nb: -1\nc: +1\nd: 0\ne: -0\nf: 0x1F\ng: 0b101\nh: 18446744073709551615\n",
    "a: 1.5\nb: -2.25\nc: 5.\nd: .5\ne: -0.0\nf: .inf\ng: -.Inf\nh: .nan\ni: 01.5\n",
    "a: true\nb: False\nc: TRUE\nd: ~\ne: null\nf: NULL\ng:\nh: Null\n",
    "a: y\nb: n\nc: Y\nd: =\ne: 2001-12-14\nf: 2001-12-14T21:59:43.10-05:00\ng: 1e400\n",
    "a: '8080'\nb: \"true\"\nc: 'null'\nd: '1.5'\ne: ''\n",
    "url: http://x.example/?a=1&b=2#frag\nglob: foo*bar\nbang: hi!\npct: 50%\n",
    "a: b # comment\n# full line\n  # indented comment\nc: d\n",
    "kind: List\nitems: []\n",
    "a: ['*', \"&x\", '!t', \"? q\", '%x']\n",
    "cidr: 10.0.0.0/8\nv6: 2001:db8::/32\nimage: nginx:1.25\nver: 1.2.3\nmem: 500Mi\n",
]

DECLINED = [
    "",
    "# only a comment\n",
    "\ufeffa: 1\nb: 2\n",  # a BOM
    "a: 1\rb: 2\r",  # lone CR line breaks
    "a: 1\x85b: 2\n",
    "a: 1\u2028b: 2\n",
    "a: yes\n",
    "a: No\n",
    "a: on\nb: OFF\n",
    "a: 'yes'\n",  # ryaml's string cannot say whether it was quoted
    "b: '<<'\n",
    "yes: 1\n",
    "a: 0755\n",
    "a: 00\n",
    "a: 1_000\n",
    "a: 0x_1F\n",
    "a: 1:20\n",
    "a: 190:20:30.15\n",
    "a: 0o17\n",
    "a: 1e3\n",
    "a: 1.5e3\n",
    "a: 1.5e+3\n",  # agrees, but floats with exponents are left to PyYAML
    "a: 1.0e+400\n",
    "a: -.5\n",
    "a: +.5\n",
    "a: 99999999999999999999999\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: !x 1\n",
    "%YAML 1.1\n---\na: 1\n",
    "? a\n: b\n",
    "? [a, b]\n: c\n",
    "base: &b {x: 1}\nm:\n  <<: *b\n",
    "m:\n  <<: {x: 1}\n",
    "1: a\n",
    "1: a\n1.0: b\n",
    "1: a\ntrue: b\n",
    "0: a\nfalse: b\n",
    "a: 1\na: 2\n",
    "a: 1\n'a': 2\n",
    "null: a\n~: b\n",
    "kind: List\nitems:\n- kind: A\n- kind: B\n",
    "a: [\n",
    "a: b: c\n",
    "\ta: 1\n",
    "a: \x07\n",
    "a: 1\n...\nb: 2\n",
    "...\n",
    'k: "x\n--- y"\n',
    "a: " + "[" * 200 + "]" * 200 + "\n",
    "a: <<\n",
    "a: 0x_\n",
]


@pytest.mark.parametrize("text", TAKEN)
def test_typical_text_takes_the_ryaml_path(text: str) -> None:
    assert assert_agrees(text) is not None


@pytest.mark.parametrize("text", DECLINED)
def test_tricky_text_is_left_to_pyyaml(text: str) -> None:
    assert assert_agrees(text) is None


def test_yaml_11_scalars_keep_their_meaning() -> None:
    text = "a: yes\nb: 0755\nc: 1_000\nd: 1:20\ne: 1e3\nf: 0o17\ng: .5e3\nh: =\ni: 1.0e+400\n"
    ((_, data, _),) = parse_yaml(text)
    assert data == {
        "a": True,
        "b": 0o755,
        "c": 1000,
        "d": 80,
        "e": "1e3",
        "f": "0o17",
        "g": ".5e3",
        "h": "=",
        "i": math.inf,
    }


@pytest.mark.parametrize(
    ("text", "line", "first_line"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, 1),
        ("x: 1\n1: a\n1.0: b\n", 3, 2),
        ("t: {1: a, true: b}\n", 1, 1),
        ("n: {0: a, false: b}\n", 1, 1),
        ("q: 1\n'q': 2\n", 2, 1),
    ],
)
def test_duplicate_keys_are_still_rejected_with_their_lines(
    text: str, line: int, first_line: int
) -> None:
    with pytest.raises(DuplicateKeyError) as caught:
        parse_yaml(text)
    assert (caught.value.line, caught.value.first_line) == (line, first_line)


def test_list_item_lines_come_from_the_event_path() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- kind: A\n\n-   kind: B\n    x: 1\n"
    assert _ryaml_path(text) is None
    assert parse_yaml(text) == [(1, {"apiVersion": "v1", "kind": "List", "items": [
        {"kind": "A"}, {"kind": "B", "x": 1}]}, [4, 6])]  # fmt: skip


def test_without_ryaml_the_other_paths_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a: 1\n---\nb: [x]\n"
    monkeypatch.setattr(_yaml, "_ryaml_loads_all", None)
    monkeypatch.setattr(_yaml, "_ryaml_loads", None)
    assert _ryaml_path(text) is None
    assert parse_yaml(text) == [(1, {"a": 1}, None), (3, {"b": ["x"]}, None)]


# --- generated manifests --------------------------------------------------------------


def words(text: str) -> list[str]:
    return text.split()


# Plain scalars whose meaning differs between YAML 1.1 and 1.2, or between PyYAML and
# Rust's number syntax, next to ones that agree.
TRICKY = [
    *words("y Y n N yes Yes YES no No NO on On ON off Off OFF"),
    *words("true True TRUE false False FALSE tRUE ~ null Null NULL nULL"),
    *words("0 -0 +0 1 -1 +1 8080 00 007 0755 -0755 08 0x1F -0x1F 0xF_F 0x 0o17 0O17 0b101"),
    *words("0B1 1_000 1_0.5 1:20 -1:20 190:20:30.15 0:0 18446744073709551615"),
    *words("18446744073709551616 -9223372036854775809 9223372036854775808"),
    *words("1.5 -1.5 +1.5 1. 0. .5 -.5 +.5 -.0 01.5 1e3 1E3 1e+3 1.5e3 1.5e+3 1.5E-3"),
    *words(".5e3 .5e+3 1.0e+400 1e400 .inf -.inf +.inf .Inf .INF .nan .NaN .NAN -.nan inf nan"),
    *words("= << 2001-12-14 2001-12-14T21:59:43.10-05:00 10.0.0.0/8 2001:db8::/32 1.2.3"),
    *words("500Mi 0.5Gi 100m app-1 v1 a.b x_y -x --x ?x !x &x *x %x @x `x a#b"),
]
TRICKY_KEYS = ["a", "kind", "items", "1", "1.0", "true", "~", "yes", "<<", "on", "'a'"]
# What manifests are made of: the ryaml path should take texts made only of these.
BENIGN = [
    *words("x app-1 v1 networking.k8s.io/v1 10.0.0.0/8 fd00::/8 TCP 8080 0 -1 +1 53 1.5 0.25"),
    *words("true false ~ null y n = a.b x_y 2001-12-14 500Mi a#b -x 0x1F"),
]
BENIGN_KEYS = ["a", "b", "kind", "metadata", "items", "app.kubernetes.io/name", "'q'", '"d"']

_text = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["--- x", "---", "...", "# no", "a: b", "x\ny", " lead", "it's", "*"]
)


def _single(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _double(text: str) -> str:
    return json.dumps(text)


class Out:
    """Lines being written, and the draws that choose what goes in them."""

    def __init__(self, draw: st.DrawFn, *, tricky: bool) -> None:
        self.draw = draw
        self.lines: list[str] = []
        self.plain = st.sampled_from(TRICKY if tricky else BENIGN)
        self.keys = st.sampled_from(TRICKY_KEYS if tricky else BENIGN_KEYS)
        self.text = self.plain | _text if tricky else self.plain
        # A block scalar "yes" is a string that ryaml cannot tell from a plain "yes".
        self.block_extra = ["yes", "0755"] if tricky else []

    def scalar(self) -> str:
        style = self.draw(st.sampled_from(["plain", "plain", "plain", "single", "double"]))
        if style == "plain":
            return self.draw(self.plain)
        value = self.draw(self.text)
        if style == "single":
            return _single(value.replace("\n", " ").replace("\r", " "))
        return _double(value)

    def block_scalar(self, indent: int) -> list[str]:
        header = self.draw(st.sampled_from(["|", "|-", "|+", ">", ">-", ">+", "|2", "| # c"]))
        pad = " " * (indent + 2)
        lines = st.sampled_from(["x", "--- y", "...", "# not a comment", "", *self.block_extra])
        body = self.draw(st.lists(lines)) or ["x"]
        return [header, *[pad + line if line else "" for line in body]]

    def comment(self, indent: int) -> None:
        if self.draw(st.integers(0, 5)) == 0:
            self.lines.append(" " * indent + "# note: yes, 0755")
        if self.draw(st.integers(0, 8)) == 0:
            self.lines.append("")

    def tail(self) -> str:
        return self.draw(st.sampled_from(["", "", "", " # c", "  ", "\t"]))

    def flow_node(self, depth: int) -> str:
        kinds = ["scalar", "scalar", "map", "seq"] if depth < 3 else ["scalar"]
        kind = self.draw(st.sampled_from(kinds))
        if kind == "scalar":
            return self.scalar()
        if kind == "seq":
            count = self.draw(st.integers(0, 3))
            return "[" + ", ".join(self.flow_node(depth + 1) for _ in range(count)) + "]"
        keys = self.draw(st.lists(self.keys, max_size=3, unique=True))
        return "{" + ", ".join(f"{k}: {self.flow_node(depth + 1)}" for k in keys) + "}"

    def block_value(self, indent: int, depth: int, lead: str) -> None:
        """A node whose first line starts with ``lead`` (``"key:"`` or ``"-"``)."""
        kinds = ["scalar", "scalar", "block", "flow", "map", "seq"]
        kind = self.draw(st.sampled_from(kinds if depth < 3 else kinds[:4]))
        pad = " " * indent
        sep = self.draw(st.sampled_from([" ", " ", "\t", "  "]))
        if kind == "scalar":
            self.lines.append(f"{pad}{lead}{sep}{self.scalar()}{self.tail()}")
        elif kind == "block":
            header, *body = self.block_scalar(indent)
            self.lines.append(f"{pad}{lead} {header}")
            self.lines.extend(body)
        elif kind == "flow":
            self.lines.append(f"{pad}{lead}{sep}{self.flow_node(depth)}{self.tail()}")
        else:
            self.lines.append(f"{pad}{lead}{self.tail()}")
            nested = lead == "-" or kind == "map" or self.draw(st.booleans())
            self.block_node(indent + 2 if nested else indent, depth + 1, kind)

    def block_node(self, indent: int, depth: int, kind: str) -> None:
        if kind == "map":
            for key in self.draw(st.lists(self.keys, min_size=1, max_size=4, unique=True)):
                self.comment(indent)
                self.block_value(indent, depth, f"{key}:")
        else:
            for _ in range(self.draw(st.integers(1, 3))):
                self.comment(indent)
                self.block_value(indent, depth, "-")


@st.composite
def yaml_texts(draw: st.DrawFn, *, tricky: bool) -> str:
    """Multi-document YAML: comments, ``---``/``...``, empty documents, block scalars,
    quoted strings, flow style, tabs, CRLF line breaks, a BOM, no final line break."""
    out = Out(draw, tricky=tricky)
    if draw(st.booleans()):
        out.lines.append("# a leading comment")
    for number in range(draw(st.integers(0, 4))):
        shape = draw(st.sampled_from(["map", "map", "seq", "empty", "inline", "block"]))
        explicit = number > 0 or shape in ("empty", "inline", "block") or draw(st.booleans())
        if shape == "inline":
            out.lines.append(f"--- {out.scalar()}")
        elif shape == "block":
            header, *body = out.block_scalar(draw(st.sampled_from([-2, 0])))
            out.lines.extend([f"--- {header}", *body])
        else:
            if explicit:
                out.lines.append("---" + draw(st.sampled_from(["", "", " # doc", " ", "\t"])))
            out.comment(0)
            if shape != "empty":
                out.block_node(draw(st.sampled_from([0, 0, 2])), 0, shape)
        if draw(st.integers(0, 4)) == 0:
            out.lines.append(draw(st.sampled_from(["...", "... # end"])))
            out.comment(0)
    text = "\n".join(out.lines) + draw(st.sampled_from(["\n", "\n", "", "\n\n", "\n  "]))
    if draw(st.integers(0, 3)) == 0:
        text = text.replace("\n", "\r\n")
    if draw(st.integers(0, 10)) == 0:
        text = "\ufeff" + text
    return text


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_texts(tricky=True))
@example("a: 1\n--- |\n  x\n...\n---\n")
def test_generated_tricky_yaml_agrees_with_the_exact_path(text: str) -> None:
    fast = assert_agrees(text)
    event("ryaml path" if fast is not None else "declined")


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_texts(tricky=False))
def test_generated_manifest_like_yaml_agrees_and_mostly_takes_the_ryaml_path(text: str) -> None:
    fast = assert_agrees(text)
    event("ryaml path" if fast is not None else "declined")
    if fast is None:
        # Declined only for a BOM, no documents, an error (the exact path's), or a
        # non-empty root "items" list (whose item lines it leaves to the event path).
        expected = outcome(_exact, text)
        if "\ufeff" in text or expected[0] == "error" or expected[1] == []:
            return
        assert any(
            isinstance(data, dict) and isinstance(data.get("items"), list) and data["items"]
            for _, data, _ in expected[1]
        ), text


# Fragments that make (mostly broken) YAML: errors must be the exact path's.
_FRAGMENTS = st.sampled_from(
    [
        "a", "b", "yes", "1", "0x1", "1e3", "'q'", '"d"', ":", ": ", "- ", "-", "---", "...",
        "\n", "\n", "\n", "\r\n", " ", "  ", "\t", "#", " # c", "[", "]", "{", "}", ", ",
        "|", ">", "&a ", "*a", "!t ", "? ", "%", "~", "<<", "items", "kind: List\n",
    ]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=30).map("".join))
def test_fragment_soup_agrees_with_the_exact_path(text: str) -> None:
    assert_agrees(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policies=st.lists(network_policies(), min_size=1, max_size=3),
    meta=server_metas(),
    served=st.booleans(),
    flow=st.sampled_from([False, None]),
    crlf=st.booleans(),
)
def test_generated_network_policies_agree_with_the_exact_path(
    policies: list[dict[str, Any]], meta: ServerMeta, served: bool, flow: bool | None, crlf: bool
) -> None:
    documents = [as_served(p, meta=meta) if served else p for p in policies]
    text = yaml.safe_dump_all(
        documents, sort_keys=False, default_flow_style=flow, explicit_start=served
    )
    if crlf:
        text = text.replace("\n", "\r\n")
    fast = assert_agrees(text)
    # Declined for label values such as 'no' or 1e3 (PyYAML dumps that one plain).
    event("ryaml path" if fast is not None else "declined")


def test_a_typical_network_policy_file_takes_the_ryaml_path() -> None:
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "app-0-policy", "namespace": "ns-0", "labels": {"team": "t0"}},
        "spec": {
            "podSelector": {"matchLabels": {"app": "app-0"}},
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"app": "client-8"}}},
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "ns-18"}
                            },
                            "podSelector": {"matchLabels": {"role": "r01"}},
                        },
                    ],
                    "ports": [{"port": 8867}, {"protocol": "UDP", "port": 53}],
                }
            ],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
            "policyTypes": ["Ingress", "Egress"],
        },
    }
    text = yaml.safe_dump_all([policy] * 50, sort_keys=False)
    fast = assert_agrees(text)
    assert fast is not None
    assert [line for line, _, _ in fast] == [1 + 36 * n for n in range(50)]
