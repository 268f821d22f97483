"""``driftwatch incidents list|show|approve|snooze|revert`` and ``driftwatch export``: the
running daemon's incidents, through its HTTP API (``server:`` with an API token).

``--server URL`` (default ``$DRIFTWATCH_SERVER``, else ``http://127.0.0.1:8080``) and the
bearer token from ``--token-file`` (else ``$DRIFTWATCH_API_TOKEN``, the token itself).
With the anonymous ``api_token`` the actor recorded is ``--actor`` (default: the login
name), as ``<actor> (via API token)``; a named token records its own name.

``export ID`` prints the incident's live policy as clean YAML ready to commit (server
fields, defaults and managed fields gone), after a ``# <path>`` line naming its file in
Git when the incident has one: ``driftwatch export prod/shop/web#1 > policies/web.yaml``.

Exit status: 0 done, 2 any error (one line: the server's JSON error, an unreachable
server, a missing token).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["DEFAULT_SERVER", "ApiError", "add_parsers", "call"]

DEFAULT_SERVER = "http://127.0.0.1:8080"
EXIT_OK, EXIT_ERROR = 0, 2
TIMEOUT = 30.0


class ApiError(Exception):
    """One line for the user."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("DRIFTWATCH_SERVER") or DEFAULT_SERVER,
        help="the daemon's HTTP server (default: $DRIFTWATCH_SERVER or %(default)s)",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        type=Path,
        help="the API bearer token (default: $DRIFTWATCH_API_TOKEN)",
    )


def _acting(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("id", metavar="ID", help="the incident id, e.g. prod/shop/web#1")
    parser.add_argument("--reason", metavar="TEXT", help="why (recorded and notified)")
    parser.add_argument(
        "--actor", metavar="NAME", help="who (with the anonymous token; default: login name)"
    )


def add_parsers(commands: Any) -> None:
    incidents = commands.add_parser(
        "incidents",
        help="list, show, approve, snooze or revert the daemon's incidents",
        description="The running daemon's incidents, through its HTTP API.",
    )
    actions = incidents.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list incidents, most recently updated first")
    _common(listing)
    listing.add_argument("--state", help="open, updated, approved, resolved (comma list)")
    listing.add_argument("--severity", help="info ... critical (comma list)")
    listing.add_argument("--namespace", help="a glob")
    listing.add_argument("--limit", type=int, help="at most this many (1-1000)")
    listing.add_argument("--json", action="store_true", help="the API's JSON")
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one incident in full")
    _common(show)
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the API's JSON")
    show.set_defaults(handler=_show)
    approve = actions.add_parser(
        "approve", help="keep the live version: no alerts until Git or the cluster changes"
    )
    _acting(approve)
    approve.set_defaults(handler=_act, verb="approve")
    snooze = actions.add_parser("snooze", help="send nothing about it for a while")
    _acting(snooze)
    when = snooze.add_mutually_exclusive_group(required=True)
    when.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 4h, 30m")
    when.add_argument("--until", metavar="TIME", help="RFC 3339, e.g. 2026-11-27T18:00:00Z")
    snooze.set_defaults(handler=_act, verb="snooze")
    revert = actions.add_parser("revert", help="put the live policy back to Git's version")
    _acting(revert)
    revert.set_defaults(handler=_act, verb="revert")
    export = commands.add_parser(
        "export",
        help="print an incident's live policy as YAML ready to commit",
        description="Print the incident's live NetworkPolicy as clean YAML (a '# <path>' "
        "line first naming its file in Git, when known).",
    )
    _common(export)
    export.add_argument("id", metavar="ID")
    export.set_defaults(handler=_export)


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = str(args.token_file.read_text(encoding="utf-8")).strip()
        except OSError as e:
            raise ApiError(f"cannot read {args.token_file}: {e.strerror or e}") from None
    else:
        token = os.environ.get("DRIFTWATCH_API_TOKEN", "").strip()
    if not token:
        raise ApiError("no API token: give --token-file FILE or set DRIFTWATCH_API_TOKEN")
    return token


def call(
    server: str, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """One API request; the answer's JSON, or :class:`ApiError` with a one-line reason."""
    import urllib.error
    import urllib.request

    url = server.rstrip("/") + "/api/v1" + path
    if not url.startswith(("http://", "https://")):
        raise ApiError(f"--server must be an http:// or https:// URL, not {server!r}")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310
            return json.loads(answer.read())
    except urllib.error.HTTPError as e:
        raise ApiError(f"{e.code}: {_error_of(e.read())}") from None
    except urllib.error.URLError as e:
        raise ApiError(f"cannot reach {server}: {e.reason}") from None
    except (OSError, ValueError) as e:
        raise ApiError(f"{server}: {e}") from None


def _error_of(raw: bytes) -> str:
    try:
        answer = json.loads(raw)
    except ValueError:
        return " ".join(raw.decode("utf-8", "replace").split())[:200] or "no answer"
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return str(answer["error"])
    return str(answer)[:200]


def _run(args: argparse.Namespace, work: Any) -> int:
    try:
        work(args, _token(args))
    except ApiError as e:
        print(f"driftwatch: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _one(incident_id: str) -> str:
    return "/incidents/" + quote(incident_id, safe="")


def _list(args: argparse.Namespace) -> int:
    def work(args: argparse.Namespace, token: str) -> None:
        query = {
            k: v
            for k, v in (
                ("state", args.state),
                ("severity", args.severity),
                ("namespace", args.namespace),
                ("limit", args.limit),
            )
            if v is not None
        }
        path = "/incidents" + (f"?{urlencode(query)}" if query else "")
        answer = call(args.server, token, "GET", path)
        if args.json:
            print(json.dumps(answer, indent=2))
            return
        rows = [("ID", "STATE", "SEVERITY", "STATUS", "UPDATED")]
        rows += [
            (i["id"], i["state"], i["severity"] or "-", i["status"], i["updated_at"])
            for i in answer["incidents"]
        ]
        widths = [max(len(str(r[c])) for r in rows) for c in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [str(v).ljust(w) for v, w in zip(row, widths, strict=False)]
            print("  ".join([*cells, str(row[-1])]))
        if answer.get("truncated"):
            print(f"(the first {answer['count']}; --limit for more)")

    return _run(args, work)


def _show(args: argparse.Namespace) -> int:
    def work(args: argparse.Namespace, token: str) -> None:
        incident = call(args.server, token, "GET", _one(args.id))
        if args.json:
            print(json.dumps(incident, indent=2))
            return
        print(describe(incident))

    return _run(args, work)


def describe(incident: dict[str, Any]) -> str:
    """An incident for people: its facts, findings, actions and diff."""
    body = incident.get("body") or {}
    lines = [
        f"{incident['id']}: {incident['state']}, {incident['severity'] or 'no'} severity,"
        f" {incident['status']}",
        f"  opened {incident['opened_at']}, updated {incident['updated_at']}"
        + (f", resolved {incident['resolved_at']}" if incident.get("resolved_at") else ""),
    ]
    if body.get("reason"):
        lines.append(f"  reason: {body['reason']}")
    source = body.get("desired_source")
    if isinstance(source, dict) and source.get("path"):
        lines.append(
            f"  git: {source['path']}" + (f":{source['line']}" if source.get("line") else "")
        )
    for finding in body.get("findings") or ():
        lines.append(
            f"  - {finding.get('severity')} {finding.get('rule')}: {finding.get('message')}"
        )
    for action in body.get("actions") or ():
        until = f" until {action['until']}" if action.get("until") else ""
        why = f": {action['reason']}" if action.get("reason") else ""
        lines.append(f"  {action['at']} {action['action']} by {action['actor']}{until}{why}")
    if body.get("diff"):
        lines += ["", str(body["diff"]).rstrip("\n")]
    return "\n".join(lines)


def _act(args: argparse.Namespace) -> int:
    def work(args: argparse.Namespace, token: str) -> None:
        body: dict[str, Any] = {"actor": args.actor or _login()}
        if args.reason:
            body["reason"] = args.reason
        if args.verb == "snooze":
            body.update({"for": args.duration} if args.duration else {"until": args.until})
        incident = call(args.server, token, "POST", f"{_one(args.id)}/{args.verb}", body)
        reason = (incident.get("body") or {}).get("reason") or ""
        print(f"{incident['id']}: {incident['state']}" + (f": {reason}" if reason else ""))

    return _run(args, work)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "unknown"


def _export(args: argparse.Namespace) -> int:
    def work(args: argparse.Namespace, token: str) -> None:
        import yaml

        answer = call(args.server, token, "GET", f"{_one(args.id)}/live")
        text = yaml.safe_dump(answer["manifest"], sort_keys=False, default_flow_style=False)
        if answer.get("path"):
            sys.stdout.write(f"# {answer['path']}\n")
        sys.stdout.write(text)

    return _run(args, work)
