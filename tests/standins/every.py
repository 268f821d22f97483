"""All four stand-ins at once, by receiver name (end-to-end tests configure one each)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tests.standins.alertmanager import AlertmanagerStandIn
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.standins.webhook import WebhookStandIn

__all__ = ["AnyStandIn", "every_standin"]

AnyStandIn = SlackStandIn | PagerDutyStandIn | AlertmanagerStandIn | WebhookStandIn


@contextlib.asynccontextmanager
async def every_standin() -> AsyncIterator[dict[str, AnyStandIn]]:
    """``{"slack": ..., "pagerduty": ..., "alertmanager": ..., "webhook": ...}``, running."""
    async with (
        SlackStandIn() as slack,
        PagerDutyStandIn() as pagerduty,
        AlertmanagerStandIn() as alertmanager,
        WebhookStandIn() as webhook,
    ):
        yield {
            "slack": slack,
            "pagerduty": pagerduty,
            "alertmanager": alertmanager,
            "webhook": webhook,
        }
