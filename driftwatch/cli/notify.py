"""``driftwatch notify test --config FILE --receiver NAME``: send one clearly labelled test
message through one configured receiver and say what came of it.

Exit status: 0 delivered, 1 not delivered (the reason on one line), 2 a bad configuration
or an unknown receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "test_body"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def add_parser(commands: Any) -> None:
    notify = commands.add_parser("notify", help="work with the configured receivers")
    actions = notify.add_subparsers(dest="action", required=True, metavar="ACTION")
    test = actions.add_parser(
        "test",
        help="send a labelled test message through one receiver",
        description="Send one clearly labelled test message through a receiver of the "
        "configuration (nothing is stored or retried) and report what it answered.",
    )
    test.add_argument("--config", metavar="FILE", type=Path, required=True)
    test.add_argument("--receiver", metavar="NAME", required=True, help="a notifiers: name")
    test.set_defaults(handler=run_test)


def test_body(incident_id: str, now: float) -> dict[str, Any]:
    """An incident body (schema version 1) that says it is a test, about no real policy."""
    from driftwatch.incidents import iso_time

    at = iso_time(now)
    return {
        "schema_version": 1,
        "type": "drift.test",
        "incident_id": incident_id,
        "cluster": "driftwatch-test",
        "namespace": "driftwatch-test",
        "name": "test-notification",
        "status": "modified",
        "severity": "info",
        "findings": [
            {
                "rule": "test",
                "severity": "info",
                "direction": "hygiene",
                "message": "This is a test message from `driftwatch notify test`: no drift.",
                "evidence": {},
            }
        ],
        "diff": "",
        "desired_source": None,
        "live_change": None,
        "occurred_at": at,
        "reason": "TEST: sent by driftwatch notify test, not about a real policy",
        "link": None,
        "opened_at": at,
        "resolved_at": None,
    }


def run_test(args: argparse.Namespace) -> int:
    from driftwatch.settings import SettingsError, load_settings

    try:
        settings = load_settings(args.config)
    except SettingsError as error:
        print(f"driftwatch: error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    names = [n.name for n in settings.notifiers]
    if args.receiver not in names:
        known = ", ".join(names) or "none"
        print(
            f"driftwatch: error: {args.config}: no receiver named {args.receiver!r} "
            f"(configured: {known})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return asyncio.run(_send(settings, args.receiver))


async def _send(settings: Any, name: str) -> int:
    import aiohttp

    from driftwatch.daemon.notifications import build_receivers
    from driftwatch.notify.model import Kind, Notification

    async with aiohttp.ClientSession() as session:
        receiver = build_receivers(settings, session)[name]
        key = str(uuid.uuid4())
        notification = Notification(
            id=key,
            receiver=name,
            incident_id=f"driftwatch-test/{key}",
            kind=Kind.TEST,
            body=test_body(f"driftwatch-test/{key}", time.time()),
        )
        try:
            outcome = await receiver.deliver(notification)
        finally:
            await receiver.close()
    if outcome.delivered:
        print(f"{name}: delivered the test message")
        return EXIT_OK
    verdict = "failed, would be retried" if outcome.retryable else "failed"
    print(f"{name}: {verdict}: {outcome.reason}", file=sys.stderr)
    return EXIT_FAILED
