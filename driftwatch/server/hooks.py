"""``POST /hooks/git``: a push to the desired-state repository triggers a fetch at once.

Two senders are understood, both authenticated with ``server.git_webhook_secret``:

- GitHub: ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body>``, event in
  ``X-GitHub-Event`` (``push``; ``ping`` is answered 200 without a fetch). The body may be
  JSON or GitHub's form encoding (``payload=<json>``);
- GitLab: ``X-Gitlab-Token: <secret>``, event in ``X-Gitlab-Event`` (``Push Hook``, ``Tag
  Push Hook``).

A request without a valid signature or token is answered 401 and does nothing else. A
push to a ref other than ``desired.git.ref`` (with no ref configured: other than the
repository's default branch, when the payload names it) is answered 202 ``ignored`` with
the reason, as are other events; an accepted push is answered 202 ``accepted`` after the
fetch was requested (the fetch itself runs in the daemon's ``desired`` task).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from driftwatch.server.auth import github_signature, same_secret
from driftwatch.server.backend import GitTrigger
from driftwatch.server.errors import json_error
from driftwatch.server.keys import BACKEND, LOG, SETTINGS

__all__ = ["git_hook", "ref_matches"]

_GITLAB_PUSHES = frozenset({"Push Hook", "Tag Push Hook"})


def ref_matches(pushed: str, wanted: str | None, default_branch: str | None) -> bool:
    """Whether a push to ``pushed`` (``refs/heads/main``) can change ``wanted`` (the
    configured ref: ``main``, ``v1.2``, ``refs/heads/main``, a commit, or ``None`` for the
    remote's HEAD, which is ``default_branch`` when the sender names it)."""
    if wanted is None:
        return default_branch is None or pushed == f"refs/heads/{default_branch}"
    if wanted.startswith("refs/"):
        return pushed == wanted
    # A branch or a tag; a pinned commit never moves, so no push changes it.
    return pushed in (f"refs/heads/{wanted}", f"refs/tags/{wanted}")


def _payload(body: bytes, content_type: str) -> dict[str, Any] | None:
    try:
        if content_type == "application/x-www-form-urlencoded":
            fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
            data = json.loads(fields["payload"][0])
        else:
            data = json.loads(body)
    except (ValueError, KeyError, IndexError):
        return None
    return data if isinstance(data, dict) else None


def _default_branch(payload: dict[str, Any]) -> str | None:
    for owner in ("repository", "project"):  # GitHub, GitLab
        section = payload.get(owner)
        if isinstance(section, dict) and isinstance(section.get("default_branch"), str):
            return str(section["default_branch"])
    return None


async def git_hook(request: web.Request) -> web.Response:
    """See the module docstring."""
    app = request.app
    trigger = app[BACKEND].git
    metrics = app[BACKEND].metrics
    secret_value = app[SETTINGS].git_webhook_secret
    if trigger is None or secret_value is None:  # not routed then; kept for safety
        return json_error(404, "not found")
    secret = secret_value.get_secret_value().encode("utf-8")
    headers = request.headers
    if "X-Hub-Signature-256" in headers:
        provider, event = "github", headers.get("X-GitHub-Event", "")
        body = await request.read()
        authentic = same_secret(
            headers["X-Hub-Signature-256"], github_signature(secret, body).encode("ascii")
        )
    elif "X-Gitlab-Token" in headers:
        provider, event = "gitlab", headers.get("X-Gitlab-Event", "")
        authentic = same_secret(headers["X-Gitlab-Token"], secret)
        body = await request.read() if authentic else b""
    else:
        provider, event, authentic, body = "unknown", "", False, b""
    if not authentic:
        metrics.git_webhook(provider, "unauthorized")
        app[LOG].warning("git hook refused: bad or missing signature", provider=provider)
        return json_error(401, "bad or missing signature")
    if provider == "github" and event == "ping":
        metrics.git_webhook(provider, "ping")
        return web.json_response({"status": "pong"})
    if event != "push" and event not in _GITLAB_PUSHES:
        metrics.git_webhook(provider, "ignored")
        return web.json_response(
            {"status": "ignored", "reason": f"{event or 'no'} event, not a push"}, status=202
        )
    return _push(request, provider, body, trigger)


def _push(request: web.Request, provider: str, body: bytes, trigger: GitTrigger) -> web.Response:
    metrics, log = request.app[BACKEND].metrics, request.app[LOG]
    payload = _payload(body, request.content_type)
    pushed = payload.get("ref") if payload is not None else None
    if payload is None or not isinstance(pushed, str):
        metrics.git_webhook(provider, "bad_request")
        return json_error(400, "not a push event (a JSON object with a ref)")
    if not ref_matches(pushed, trigger.ref, _default_branch(payload)):
        metrics.git_webhook(provider, "ignored")
        watching = trigger.ref or "the default branch"
        return web.json_response(
            {"status": "ignored", "reason": f"push to {pushed}; watching {watching}"},
            status=202,
        )
    trigger.fetch()
    metrics.git_webhook(provider, "accepted")
    log.info("git push received; fetching now", provider=provider, ref=pushed)
    return web.json_response({"status": "accepted", "ref": pushed}, status=202)
