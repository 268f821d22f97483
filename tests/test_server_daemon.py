"""The server inside the daemon: an incident opened by a live change is served by the API
under its URL-encoded id; the server stops with the daemon; ``driftwatch run`` with a
``server:`` section serves probes and metrics, hides the token from its logs and still
stops within 5 s on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import structlog

from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import start_until_ready
from driftwatch.incidents import SqliteStore
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.sandbox import Sandbox, SandboxThread
from tests.aio import async_test
from tests.test_daemon import EXAMPLES, FAST, NP, settings_for
from tests.test_metrics import world_open

TOKEN = "daemon-api-token-123"


@async_test(timeout=60)
async def test_an_opened_incident_is_served_by_the_api_and_the_server_stops_with_the_daemon(
    tmp_path: Path,
) -> None:
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        server = {"listen": "127.0.0.1:0", "api_token": TOKEN}
        settings = settings_for(
            sandbox.kubeconfig_path(tmp_path), {"path": str(EXAMPLES)}, server=server
        )
        fake = ScriptedReceiver("fake")
        store = await SqliteStore(tmp_path / "state.db").open()
        notifications = await Notifications.open(
            settings, log=structlog.get_logger(), receivers={"fake": fake}, store=store
        )
        daemon = Daemon(settings, notifiers=[], tuning=FAST, notifications=notifications)
        task = await start_until_ready(daemon, timeout=20)
        assert daemon.server is not None
        url = daemon.server.url
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with aiohttp.ClientSession(base_url=url, headers=headers) as client:
                sandbox.put_object(world_open(), manager="kubectl-edit")
                sandbox.delete_object(*NP, "default-deny", "payments")
                deadline = time.monotonic() + 10
                while len(fake.delivered) < 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                async with client.get("/api/v1/incidents?state=open&namespace=shop") as r:
                    listed = await r.json()
                assert [i["id"] for i in listed["incidents"]] == [
                    "test/shop/frontend-allow-from-ingress#1"
                ]
                one = listed["incidents"][0]
                assert (one["severity"], one["status"], one["state"]) == (
                    "critical",
                    "modified",
                    "open",
                )
                assert one["body"]["live_change"]["manager"] == "kubectl-edit"
                encoded = quote("test/payments/default-deny#1", safe="")
                async with client.get(f"/api/v1/incidents/{encoded}") as r:
                    assert r.status == 200
                    assert (await r.json())["status"] == "missing"
                async with client.get("/readyz") as r:
                    assert r.status == 200
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)
            await notifications.close()
        assert not daemon.server.listening.is_set()
        async with aiohttp.ClientSession() as client:
            with pytest.raises(aiohttp.ClientConnectionError):
                await client.get(url + "/healthz")


def _get(url: str, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback http
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            body = answer.read().decode()
            return answer.status, body if "metrics" in url else json.loads(body)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def test_run_serves_probes_and_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        config = tmp_path / "driftwatch.yaml"
        config.write_text(
            f"cluster: {{name: t, kubeconfig: {kubeconfig}}}\n"
            f"desired: {{path: {EXAMPLES}}}\nlog: {{format: json}}\n"
            "server: {listen: '127.0.0.1:0', api_token_file: token}\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftwatch", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            url, seen = None, []
            deadline = time.monotonic() + 20
            while url is None and time.monotonic() < deadline:
                line = proc.stderr.readline()
                seen.append(line)
                if '"serving http"' in line:
                    url = json.loads(line)["url"]
            assert url is not None, "".join(seen)
            assert _get(url + "/healthz") == (200, {"status": "ok"})
            status, body = _get(url + "/readyz")
            while status != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
                status, body = _get(url + "/readyz")
            assert (status, body) == (200, {"status": "ready", "reasons": [], "role": "single"})
            status, text = _get(url + "/metrics")
            assert status == 200
            assert 'driftwatch_build_info{version="' in text
            # Without notifiers nothing is stored: the API says so (with the token).
            status, body = _get(url + "/api/v1/incidents", Authorization=f"Bearer {TOKEN}")
            assert status == 404
            assert "configure notifiers" in body["error"]
            assert _get(url + "/api/v1/incidents")[0] == 401
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
            assert time.monotonic() - started < 5
            assert proc.returncode == 0, err
            assert TOKEN not in "".join(seen) + err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
