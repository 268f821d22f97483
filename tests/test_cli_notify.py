"""``driftwatch notify test``: one labelled message through one configured receiver."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import yaml

from tests.aio import async_test
from tests.standins.webhook import WebhookStandIn

ROOT = Path(__file__).resolve().parents[1]


async def notify_test(config: Path, receiver: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "driftwatch", "notify", "test", "--config", str(config),
        "--receiver", receiver,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@async_test(timeout=60)
async def test_a_test_message_is_delivered_labelled_and_failures_are_reported(
    tmp_path: Path,
) -> None:
    async with WebhookStandIn() as hook:
        config = tmp_path / "driftwatch.yaml"
        config.write_text(yaml.safe_dump({"notifiers": [hook.receiver_config("siem")]}))

        status, out, err = await notify_test(config, "siem")
        assert (status, err) == (0, "")
        assert out == "siem: delivered the test message\n"
        (delivered,) = hook.delivered
        assert delivered.kind == "test"
        assert delivered.raw["body"]["type"] == "drift.test"
        assert "TEST" in delivered.raw["body"]["reason"]

        hook.fail_next(400)
        status, _, err = await notify_test(config, "siem")
        assert status == 1
        assert err.startswith("siem: failed: ")
        assert "400" in err
        assert hook.secret not in err

        status, _, err = await notify_test(config, "nope")
        assert status == 2
        assert "no receiver named 'nope' (configured: siem)" in err
