"""The text diff of two policies: what a reviewer reads next to the findings.

The diff is exactly ``difflib.unified_diff`` of the two canonical YAML renderings (three
lines of context), computed faster. Two renderings of a drifted policy mostly share a
long common head and tail, and difflib's ``SequenceMatcher`` spends most of its time
matching those again. Here they are set aside and only the changed middle goes through
``SequenceMatcher`` -- but only when that provably gives difflib's own answer (see
:func:`_trim_is_exact`); otherwise the whole of both sides does.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence

from driftwatch.policy import NetworkPolicy
from driftwatch.policy.render import yaml_lines

__all__ = ["diff_lines", "unified_diff"]

_CONTEXT = 3
_AUTOJUNK_MIN = 200
"""From this many lines of ``b`` on, ``SequenceMatcher`` ignores its "popular" lines."""

_ANCHOR_SEARCH = 6
"""How many lines :func:`_other_run` looks back for a rarer anchor line."""

Opcode = tuple[str, int, int, int, int]

_SAME, _DROPPED, _ADDED = " ".__add__, "-".__add__, "+".__add__


def unified_diff(desired: NetworkPolicy | None, live: NetworkPolicy | None) -> str:
    """Unified diff of the canonical YAML, desired first; an absent side is empty."""
    a = yaml_lines(desired) if desired is not None else []
    b = yaml_lines(live) if live is not None else []
    return diff_lines(a, b)


def diff_lines(a: Sequence[str], b: Sequence[str]) -> str:
    """``"".join(difflib.unified_diff(a, b, "desired", "live", n=3))``."""
    a, b = tuple(a), tuple(b)
    if a == b:
        return ""
    if len(b) >= _AUTOJUNK_MIN and _has_popular(b):
        return "".join(difflib.unified_diff(a, b, "desired", "live", n=_CONTEXT))
    return _format(a, b, _opcodes(a, b))


def _opcodes(a: tuple[str, ...], b: tuple[str, ...]) -> list[Opcode]:
    """``SequenceMatcher(None, a, b).get_opcodes()`` for ``a != b``, ``b`` without popular
    lines."""
    n, m = len(a), len(b)
    limit = min(n, m)
    p = 0
    while p < limit and a[p] == b[p]:
        p += 1
    s = 0
    while s < limit - p and a[n - 1 - s] == b[m - 1 - s]:
        s += 1
    if (p or s) and not _trim_is_exact(a, b, p, s):
        p = s = 0
    codes: list[Opcode] = [("equal", 0, p, 0, p)] if p else []
    if p == n - s:
        codes.append(("insert", p, p, p, m - s))
    elif p == m - s:
        codes.append(("delete", p, n - s, p, p))
    elif set(a[p : n - s]).isdisjoint(b[p : m - s]):
        codes.append(("replace", p, n - s, p, m - s))  # what SequenceMatcher says, at once
    else:
        # No popular lines: autojunk would change nothing on all of ``b``, and must not
        # start on the middle alone.
        matcher = difflib.SequenceMatcher(None, a[p : n - s], b[p : m - s], autojunk=False)
        codes.extend(
            (tag, i1 + p, i2 + p, j1 + p, j2 + p) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        )
    if s:
        codes.append(("equal", n - s, n, m - s, m))
    return codes


def _has_popular(b: tuple[str, ...]) -> bool:
    """Whether ``SequenceMatcher`` (autojunk on) would set lines of ``b`` aside as popular."""
    return Counter(b).most_common(1)[0][1] > len(b) // 100 + 1


def _trim_is_exact(a: tuple[str, ...], b: tuple[str, ...], p: int, s: int) -> bool:
    """Whether ``SequenceMatcher(None, a, b)`` matches the common head (``p`` lines) and tail
    (``s`` lines) as they stand, so that its answer is theirs plus the middle's own.

    It picks the longest common run of the whole range first (the earliest of equal
    ones), then recurses on either side of it. So when no other common run is longer than
    the head and none is as long as the tail, it picks the head and tail (in either order)
    and is left with the middle, exactly. Checked by looking for any common run of the
    length that would break this, other than a piece of the head or the tail, in the range
    where it would compete.
    """
    n, m = len(a), len(b)
    if p >= s:
        # The head first (it wins ties: it starts at 0), then the tail right of it.
        return not _other_run(a, b, p + 1, alo=0, ahi=n, blo=0, bhi=m, p=p, s=s) and not (
            s and _other_run(a, b, s, alo=p, ahi=n, blo=p, bhi=m, p=p, s=s)
        )
    # The tail first (only if strictly longest), then the head left of it.
    return not _other_run(a, b, s, alo=0, ahi=n, blo=0, bhi=m, p=p, s=s) and not (
        p and _other_run(a, b, p + 1, alo=0, ahi=n - s, blo=0, bhi=m - s, p=p, s=s)
    )


def _other_run(
    a: tuple[str, ...],
    b: tuple[str, ...],
    width: int,
    *,
    alo: int,
    ahi: int,
    blo: int,
    bhi: int,
    p: int,
    s: int,
) -> bool:
    """Whether ``a[alo:ahi]`` and ``b[blo:bhi]`` share a run of ``width`` lines (or more)
    that is not part of the common head (``p`` lines) or tail (``s`` lines).

    A run of ``width`` lines starting at ``x`` or up to ``width - 1`` lines later holds
    ``a[x + width - 1]``: such anchor lines are looked up in ``b`` (a rarer one a few lines
    earlier if there is one: it covers fewer runs, but is matched in fewer places) and the
    run through each match measured.
    """
    n, m = len(a), len(b)
    tail_a, tail_shift = n - s, m - n
    # The tail cannot grow backwards unless the head stopped it (then check runs on it).
    tail_whole = s == 0 or tail_a == 0 or m - s == 0 or a[tail_a - 1] != b[m - s - 1]
    x = alo
    while x <= ahi - width:
        i = x + width - 1
        count = b.count(a[i])
        k = i
        while count > 1 and k > x and i - k < _ANCHOR_SEARCH:
            k -= 1
            if (c := b.count(a[k])) < count:
                i, count = k, c
        x = i + 1
        if not count:
            continue
        line = a[i]
        j = -1
        for _ in range(count):
            j = b.index(line, j + 1)
            if j < blo or j >= bhi:
                continue
            if i == j and i < p:
                continue  # on the head: the run through here is (part of) it
            if tail_whole and j - i == tail_shift and i >= tail_a:
                continue  # on the tail, likewise
            back = 0
            most = min(i - alo, j - blo)
            while back < most and a[i - back - 1] == b[j - back - 1]:
                back += 1
            ahead = 0
            most = min(ahi - i, bhi - j) - 1
            while ahead < most and a[i + ahead + 1] == b[j + ahead + 1]:
                ahead += 1
            in_tail = j - i == tail_shift and i - back >= tail_a
            if back + ahead + 1 >= width and not in_tail:
                return True
    return False


def _groups(codes: list[Opcode]) -> list[list[Opcode]]:
    """``SequenceMatcher.get_grouped_opcodes(3)`` for these opcodes (never empty: ``a`` and
    ``b`` differ)."""
    n, nn = _CONTEXT, _CONTEXT + _CONTEXT
    tag, i1, i2, j1, j2 = codes[0]
    if tag == "equal":
        codes[0] = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    tag, i1, i2, j1, j2 = codes[-1]
    if tag == "equal":
        codes[-1] = tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    groups: list[list[Opcode]] = []
    group: list[Opcode] = []
    for code in codes:
        tag, i1, i2, j1, j2 = code
        if tag == "equal" and i2 - i1 > nn:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            groups.append(group)
            group = [(tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2)]
        else:
            group.append(code)
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        groups.append(group)
    return groups


def _range(start: int, stop: int) -> str:
    """``difflib._format_range_unified``."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _format(a: tuple[str, ...], b: tuple[str, ...], codes: list[Opcode]) -> str:
    """The text ``difflib.unified_diff`` writes for these opcodes."""
    out = ["--- desired\n", "+++ live\n"]
    for group in _groups(codes):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(map(_SAME, a[i1:i2]))
                continue
            if tag != "insert":
                out.extend(map(_DROPPED, a[i1:i2]))
            if tag != "delete":
                out.extend(map(_ADDED, b[j1:j2]))
    return "".join(out)
