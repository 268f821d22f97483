"""Label selectors written as strings, the way ``kubectl -l`` takes them.

``app=web,tier!=db,env in (prod,staging),!legacy,team`` becomes a :class:`LabelSelector`.
"""

from __future__ import annotations

import re

from driftwatch.policy.model import LabelSelector, Requirement

__all__ = ["parse_selector_string"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<not>!)\s*(?P<nkey>[\w./-]+)
      | (?P<skey>[\w./-]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<ekey>[\w./-]+)\s*(?P<eop>==|!=|=)\s*(?P<value>[\w.-]*)
      | (?P<key>[\w./-]+)
    )\s*(?:,|$)""",
    re.VERBOSE,
)


def parse_selector_string(text: str) -> LabelSelector:
    """Parse a kubectl-style selector; ``ValueError`` naming the position on bad input."""
    labels: dict[str, str] = {}
    exprs: list[Requirement] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"invalid label selector {text!r} at position {pos}")
        if m["nkey"]:
            exprs.append(Requirement(m["nkey"], "DoesNotExist"))
        elif m["skey"]:
            values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
            if not values:
                raise ValueError(f"invalid label selector {text!r}: empty value set")
            exprs.append(Requirement(m["skey"], "In" if m["setop"] == "in" else "NotIn", values))
        elif m["ekey"]:
            if m["eop"] == "!=":
                exprs.append(Requirement(m["ekey"], "NotIn", (m["value"],)))
            else:
                labels[m["ekey"]] = m["value"]
        else:
            exprs.append(Requirement(m["key"], "Exists"))
        pos = m.end()
    return LabelSelector(tuple(sorted(labels.items())), tuple(exprs))
