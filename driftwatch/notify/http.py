"""Reading an HTTP answer as a delivery outcome: one policy for every HTTP receiver."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from driftwatch.notify.model import Outcome

__all__ = ["RETRYABLE", "outcome_of", "retry_after"]

RETRYABLE = frozenset({408, 425, 429})
"""4xx statuses worth retrying (with every 5xx): timeout, too early, rate limited."""

MAX_EXCERPT = 200


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if
    absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def outcome_of(status: int, headers: Mapping[str, str], body: str, *, what: str) -> Outcome:
    """2xx delivered; 408/425/429/5xx retry (honouring ``Retry-After``); other 4xx permanent.

    ``what`` names the receiver's endpoint in the reason; ``body`` is cut short (it is the
    remote side's text, never ours, so it holds no secret of ours).
    """
    if 200 <= status < 300:
        return Outcome.ok()
    excerpt = " ".join(body.split())[:MAX_EXCERPT]
    reason = f"{what} answered {status}" + (f": {excerpt}" if excerpt else "")
    if status in RETRYABLE or status >= 500:
        return Outcome.retry(reason, retry_after(headers))
    return Outcome.fail(reason)
