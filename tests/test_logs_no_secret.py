"""No secret in any log line, in either format: a real ``driftwatch run`` at debug level,
with every kind of secret configured (Slack token and signing secret, PagerDuty routing key,
webhook signing secret, API tokens, anonymous and named, Git hook secret), receivers that
fail before they accept, and requests that carry the secrets where they do not belong (a
wrong bearer token that starts with the right one, the hook secret in a query string and a
GitLab header, a Slack interaction signed with a wrong secret that starts with the right
one). Its whole output,
stdout and stderr, is searched for every secret (issue #6)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from driftwatch.sandbox import SandboxThread
from driftwatch.sandbox.kubectl import Kubectl
from tests.standins.every import every_standin
from tests.test_daemon import EXAMPLES, _git, needs_git, needs_kubectl

API_TOKEN = "api-token-7f3c9d2e1b"
HOOK_SECRET = "hook-secret-5a8e0c4f"
NAMED_TOKEN = "named-token-4e9a1c7b"
SIGNING_SECRET = "slack-signing-8c2e6f0d"
URL_KEY = "url-key-93b1d07a"
"""A key in the webhook's URL (as some gateways want): logged reasons name the URL."""
POLICY = "db-allow-from-backend"


@pytest.mark.kubectl
@pytest.mark.git
@pytest.mark.slow
@needs_kubectl
@needs_git
@pytest.mark.parametrize("fmt", ["json", "console"])
def test_no_secret_reaches_the_log_in_either_format(tmp_path: Path, fmt: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "policies")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "initial")
    (tmp_path / "api-token").write_text(API_TOKEN + "\n")
    (tmp_path / "hook-secret").write_text(HOOK_SECRET + "\n")
    (tmp_path / "named-token").write_text(NAMED_TOKEN + "\n")
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        kubectl = Kubectl(kubeconfig, tmp_path / "home")

        async def scenario() -> str:
            async with every_standin() as services:
                secrets = {name: s.secret for name, s in services.items()}
                secrets |= {"api": API_TOKEN, "hook": HOOK_SECRET, "url key": URL_KEY}
                secrets |= {"named api": NAMED_TOKEN, "slack signing": SIGNING_SECRET}
                notifiers = [s.receiver_config(n) for n, s in services.items()]
                for notifier in notifiers:
                    if notifier["type"] == "webhook":
                        notifier["url"] += f"?key={URL_KEY}"
                    if notifier["type"] == "slack":
                        notifier["signing_secret"] = SIGNING_SECRET
                config = tmp_path / "driftwatch.yaml"
                config.write_text(
                    yaml.safe_dump(
                        {
                            "cluster": {"name": "test", "kubeconfig": str(kubeconfig)},
                            "desired": {
                                "git": {"url": str(repo), "ref": "main", "path": "policies"}
                            },
                            "notifiers": notifiers,
                            "state": {"path": str(tmp_path / "state.db")},
                            "server": {
                                "listen": "127.0.0.1:0",
                                "api_token_file": str(tmp_path / "api-token"),
                                "api_tokens": [
                                    {"name": "ops", "token_file": str(tmp_path / "named-token")}
                                ],
                                "git_webhook_secret_file": str(tmp_path / "hook-secret"),
                            },
                            "log": {"format": fmt, "level": "debug"},
                        }
                    )
                )
                for standin in services.values():
                    standin.fail_next(500, times=1)  # a failure, a retry, then delivery
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "driftwatch", "run", "--config", str(config),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                    limit=2**22, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                                      "XDG_CACHE_HOME": str(tmp_path / "cache")},
                )  # fmt: skip
                lines: list[str] = []

                async def read() -> None:
                    assert proc.stdout is not None
                    async for raw in proc.stdout:
                        lines.append(raw.decode(errors="replace"))

                reader = asyncio.create_task(read())

                async def until(pattern: str, timeout: float = 20) -> re.Match[str]:
                    deadline = asyncio.get_running_loop().time() + timeout
                    while True:
                        for line in lines:
                            if found := re.search(pattern, line):
                                return found
                        if asyncio.get_running_loop().time() > deadline:
                            raise AssertionError(f"no {pattern!r} in:\n{''.join(lines[-40:])}")
                        await asyncio.sleep(0.05)

                try:
                    # The server's own line ("serving http", url=...): the watcher's
                    # line names the API server's URL and may come first.
                    url = (await until(r'(?:url=|"url":")(http://127\.0\.0\.1:\d+)')).group(1)
                    await until("in sync with the cluster")
                    await asyncio.to_thread(
                        kubectl.run, "-n", "shop", "patch", "networkpolicy", POLICY,
                        "--type=merge", "-p", '{"spec": {"podSelector": {"matchLabels": null}}}',
                    )  # fmt: skip
                    async with aiohttp.ClientSession() as client:
                        for headers in (
                            {"Authorization": f"Bearer {API_TOKEN}"},
                            {"Authorization": f"Bearer {API_TOKEN}-and-more"},
                            {"Authorization": API_TOKEN},
                        ):
                            async with client.get(f"{url}/api/v1/incidents", headers=headers):
                                pass
                        async with client.get(
                            f"{url}/api/v1/incidents",
                            headers={"Authorization": f"Bearer {NAMED_TOKEN}x"},
                        ) as answer:
                            assert answer.status == 401
                        stamp = str(int(time.time()))
                        form = b"payload=%7B%7D"
                        wrong = hmac.new(
                            (SIGNING_SECRET + "x").encode(), b"v0:" + stamp.encode() + b":" + form,
                            hashlib.sha256,
                        ).hexdigest()  # fmt: skip
                        async with client.post(
                            f"{url}/hooks/slack", data=form,
                            headers={
                                "X-Slack-Request-Timestamp": stamp,
                                "X-Slack-Signature": f"v0={wrong}",
                                "Content-Type": "application/x-www-form-urlencoded",
                            },
                        ) as answer:  # fmt: skip
                            assert answer.status == 401
                        hook = f"{url}/hooks/git?token={HOOK_SECRET}"
                        async with client.post(
                            hook, data=b"{}", headers={"X-Gitlab-Token": HOOK_SECRET + "x"}
                        ) as answer:
                            assert answer.status == 401
                    for name in services:
                        pattern = f"notification delivered.*{name}|{name}.*notification delivered"
                        await until(pattern)
                finally:
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(proc.wait(), timeout=15)
                    await asyncio.wait_for(reader, timeout=10)
                output = "".join(lines)
                assert "notification will be retried" in output  # the failures were logged
                leaked = sorted(name for name, s in secrets.items() if s and s in output)
                assert leaked == []  # the names of the secrets found, not their values
                return output

        output = asyncio.run(asyncio.wait_for(scenario(), timeout=90))
        # What was searched holds the lines that could have carried a secret.
        assert output.count("notification will be retried") == 4  # one per receiver
        assert output.count("notification delivered") == 4
        assert "git hook refused" in output
        assert "kube_config" in output  # debug lines of the libraries too
