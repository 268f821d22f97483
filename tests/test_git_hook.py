"""``POST /hooks/git``: a signed GitHub push or a GitLab push with the right token makes a
new commit the desired state at once (the poll interval is an hour: only the hook can
cause a fetch); a missing or wrong signature is 401 and fetches nothing; pings, other
events and pushes to other refs fetch nothing either."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import start_until_ready
from driftwatch.sandbox import Sandbox
from driftwatch.server import github_signature, ref_matches
from tests.aio import async_test
from tests.test_daemon import EXAMPLES, FAST, _git, needs_git, settings_for
from tests.test_metrics import scrape, value

SECRET = "hook-secret-for-tests"
pytestmark = [pytest.mark.git, needs_git]


def push(ref: str = "refs/heads/main", **extra: Any) -> bytes:
    return json.dumps({"ref": ref, "after": "0" * 40, **extra}).encode()


def github(body: bytes, event: str = "push", secret: str = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": github_signature(secret.encode(), body),
        "Content-Type": "application/json",
    }


@contextlib.asynccontextmanager
async def hooked_daemon(
    tmp_path: Path,
) -> AsyncIterator[tuple[Daemon, Path, aiohttp.ClientSession]]:
    """A daemon whose desired state is a local Git repository polled hourly, with the hook
    on; the repository's work tree; a client for the daemon's server."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "policies")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "initial")
    (tmp_path / "hook-secret").write_text(SECRET + "\n")
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        desired = {
            "git": {"url": str(repo), "ref": "main", "path": "policies", "poll_interval": "1h"}
        }
        server = {
            "listen": "127.0.0.1:0",
            "git_webhook_secret_file": str(tmp_path / "hook-secret"),
        }
        settings = settings_for(sandbox.kubeconfig_path(tmp_path), desired, server=server)
        assert SECRET in settings.secret_values()
        daemon = Daemon(settings, notifiers=[], tuning=FAST, git_cache=tmp_path / "cache")
        task = await start_until_ready(daemon, timeout=20)
        assert daemon.server is not None
        try:
            async with aiohttp.ClientSession(base_url=daemon.server.url) as client:
                yield daemon, repo, client
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)


def new_commit(repo: Path) -> str:
    (repo / "policies" / "README").write_text(f"touched {time.time()}\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "touch")
    return _git(repo, "rev-parse", "HEAD")


async def committed_within(daemon: Daemon, commit: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while daemon.desired_commit != commit:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@async_test(timeout=60)
async def test_a_signed_github_push_fetches_at_once_and_a_bad_signature_nothing(
    tmp_path: Path,
) -> None:
    async with hooked_daemon(tmp_path) as (daemon, repo, client):
        first = daemon.desired_commit
        commit = new_commit(repo)

        # Unsigned, wrongly signed, signed for another body, a GitLab token that is wrong:
        # 401 and no fetch.
        body = push()
        refused = [
            {"X-GitHub-Event": "push"},
            github(body, secret="not-the-secret"),
            github(push("refs/heads/other")),
            {**github(body), "X-Hub-Signature-256": "sha256=" + "0" * 64},
            {**github(body), "X-Hub-Signature-256": "sha1=abc"},
            {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"},
        ]
        for headers in refused:
            async with client.post("/hooks/git", data=body, headers=headers) as r:
                assert r.status == 401, headers
                assert await r.json() == {"error": "bad or missing signature"}
        assert not await committed_within(daemon, commit, 0.5)
        assert daemon.desired_commit == first
        assert daemon.git_fetches == 0
        samples = await scrape(daemon)
        assert value(samples, "driftwatch_git_webhook_requests_total", result="unauthorized") == 6

        # Signed: fetched within a second.
        sent = time.monotonic()
        async with client.post("/hooks/git", data=body, headers=github(body)) as r:
            assert r.status == 202
            assert await r.json() == {"status": "accepted", "ref": "refs/heads/main"}
        assert await committed_within(daemon, commit, 1.0)
        print(f"push hook -> new commit in the desired state: {time.monotonic() - sent:.3f} s")
        assert daemon.git_fetches == 1
        samples = await scrape(daemon)
        assert value(samples, "driftwatch_git_webhook_requests_total", result="accepted") == 1


@async_test(timeout=60)
async def test_a_gitlab_push_with_the_token_fetches(tmp_path: Path) -> None:
    async with hooked_daemon(tmp_path) as (daemon, repo, client):
        commit = new_commit(repo)
        headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
        body = push(project={"default_branch": "main"})
        async with client.post("/hooks/git", data=body, headers=headers) as r:
            assert r.status == 202
        assert await committed_within(daemon, commit, 1.0)
        samples = await scrape(daemon)
        labels = {"provider": "gitlab", "result": "accepted"}
        assert value(samples, "driftwatch_git_webhook_requests_total", **labels) == 1


@async_test(timeout=60)
async def test_pings_other_events_and_other_refs_fetch_nothing(tmp_path: Path) -> None:
    async with hooked_daemon(tmp_path) as (daemon, repo, client):
        new_commit(repo)
        ping = json.dumps({"zen": "Design for failure.", "hook_id": 1}).encode()
        async with client.post("/hooks/git", data=ping, headers=github(ping, "ping")) as r:
            assert (r.status, await r.json()) == (200, {"status": "pong"})
        issue = b'{"action": "opened"}'
        async with client.post("/hooks/git", data=issue, headers=github(issue, "issues")) as r:
            assert r.status == 202
            assert await r.json() == {"status": "ignored", "reason": "issues event, not a push"}
        other = push("refs/heads/feature")
        async with client.post("/hooks/git", data=other, headers=github(other)) as r:
            assert r.status == 202
            assert await r.json() == {
                "status": "ignored",
                "reason": "push to refs/heads/feature; watching main",
            }
        junk = b"not json"
        async with client.post("/hooks/git", data=junk, headers=github(junk)) as r:
            assert r.status == 400
        await asyncio.sleep(0.3)
        assert daemon.git_fetches == 0

        # GitHub's form encoding (payload=<json>) is understood too.
        form = urlencode({"payload": push().decode()}).encode()
        headers = {**github(form), "Content-Type": "application/x-www-form-urlencoded"}
        async with client.post("/hooks/git", data=form, headers=headers) as r:
            assert r.status == 202
            assert (await r.json())["status"] == "accepted"
        deadline = time.monotonic() + 1
        while daemon.git_fetches == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert daemon.git_fetches == 1


@pytest.mark.parametrize(
    ("pushed", "wanted", "default", "matches"),
    [
        ("refs/heads/main", "main", None, True),
        ("refs/heads/main", "refs/heads/main", None, True),
        ("refs/tags/v1", "v1", None, True),
        ("refs/heads/dev", "main", None, False),
        ("refs/heads/main", None, "main", True),
        ("refs/heads/dev", None, "main", False),
        ("refs/heads/dev", None, None, True),  # the default branch unknown: fetch
        ("refs/heads/main", "0123456789abcdef0123456789abcdef01234567", None, False),
    ],
)
def test_which_pushes_can_move_the_configured_ref(
    pushed: str, wanted: str | None, default: str | None, matches: bool
) -> None:
    assert ref_matches(pushed, wanted, default) is matches
