"""``limit``/``continue`` paging of lists.

The token is what the real server sends (base64 of ``{"v", "rv", "start"}``). Pages are cut
from the current state, not a snapshot, but carry the first page's resourceVersion; a token
older than the compacted history is 410 Expired, as on the real server.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from typing import Any

from driftwatch.sandbox.errors import ApiError, bad_request

__all__ = ["decode_continue", "encode_continue", "page"]

Obj = dict[str, Any]


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def encode_continue(revision: int, last: Obj) -> str:
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": _key(last)})
    return base64.urlsafe_b64encode(token.encode()).decode()


def decode_continue(token: str, compacted: int) -> tuple[int, str]:
    """(resourceVersion of the first page, last key sent)."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        revision, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("continue key is not valid") from None
    if revision < compacted:
        raise ApiError(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result."
            " You can start a new list without the continue parameter.",
        )
    return revision, start


def page(
    items: list[Obj], revision: int, compacted: int, limit: int, token: str | None
) -> tuple[list[Obj], Obj]:
    """The items of one page (in key order) and the list metadata."""
    if token:
        revision, start = decode_continue(token, compacted)
        items = items[bisect.bisect_right(items, start, key=_key) :]  # items are in key order
    meta: Obj = {"resourceVersion": str(revision)}
    if limit > 0 and len(items) > limit:
        meta["continue"] = encode_continue(revision, items[limit - 1])
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    return items, meta
