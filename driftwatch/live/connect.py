"""A kubernetes_asyncio ``ApiClient`` from a kubeconfig or the in-cluster configuration.

Which configuration, as kubectl decides: an explicit kubeconfig path; else ``$KUBECONFIG``
(a ``:``-separated list, merged as kubectl merges it); else, inside a pod (no context asked
for and ``KUBERNETES_SERVICE_HOST`` set), the service account; else ``~/.kube/config``.
Problems are one-line :class:`LiveConfigError` messages naming the file and context; no
message ever contains a token.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config

from driftwatch.live.errors import LiveConfigError

__all__ = ["DEFAULT_KUBECONFIG", "SERVICE_ACCOUNT_DIR", "connect", "kubeconfig_paths"]

DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_REDACTED = "<redacted>"


def kubeconfig_paths(
    kubeconfig: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> list[Path]:
    """The kubeconfig files to read, in merge order (existing or not)."""
    if kubeconfig is not None:
        return [Path(kubeconfig).expanduser()]
    listed = environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return paths or [Path(DEFAULT_KUBECONFIG).expanduser()]


async def connect(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> ApiClient:
    """An ``ApiClient`` for the cluster (close it: ``async with await connect(...) as api``).

    ``context`` picks a kubeconfig context (default: its current context); ``token``
    replaces whatever credentials the configuration carries with a bearer token.
    ``environ`` and ``service_account_dir`` are for tests.
    """
    env = os.environ if environ is None else environ
    configuration = Configuration()
    secrets = [token] if token else []
    in_cluster = (
        kubeconfig is None
        and context is None
        and not env.get("KUBECONFIG")
        and bool(env.get("KUBERNETES_SERVICE_HOST"))
    )
    if in_cluster:
        _load_in_cluster(configuration, env, service_account_dir, secrets)
    else:
        await _load_kubeconfig(configuration, kubeconfig_paths(kubeconfig, env), context, secrets)
    if token is not None:
        if not token.strip():
            raise LiveConfigError("the bearer token given is empty")
        configuration.api_key["BearerToken"] = f"Bearer {token.strip()}"
        configuration.refresh_api_key_hook = None
    return ApiClient(configuration=configuration)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return " ".join(text.split())


def _load_in_cluster(
    configuration: Configuration, env: Mapping[str, str], directory: Path, secrets: list[str]
) -> None:
    token_file, ca_file = directory / "token", directory / "ca.crt"
    with contextlib.suppress(OSError):  # the loader names the problem
        secrets.append(token_file.read_text(encoding="utf-8").strip())
    loader: Any = load_incluster_config  # untyped
    try:
        loader(
            client_configuration=configuration,
            token_filename=str(token_file),
            cert_filename=str(ca_file),
            environ=dict(env),
        )
    except (ConfigException, OSError) as error:
        raise LiveConfigError(
            f"in-cluster configuration ({directory}): {_scrub(str(error), secrets)}"
        ) from error


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LiveConfigError(f"kubeconfig {path}: {error.strerror or error}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "malformed YAML"
        raise LiveConfigError(f"kubeconfig {path}{where}: not valid YAML: {problem}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LiveConfigError(f"kubeconfig {path}: not a kubeconfig (a mapping is expected)")
    return data


def _names(data: Mapping[str, Any], section: str) -> list[str]:
    entries = data.get(section)
    if not isinstance(entries, list):
        return []
    return [str(e["name"]) for e in entries if isinstance(e, Mapping) and "name" in e]


def _tokens(data: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for entry in data.get("users") or []:
        user = entry.get("user") if isinstance(entry, Mapping) else None
        if isinstance(user, Mapping):
            found.extend(str(user[k]) for k in ("token", "password") if user.get(k))
    return found


async def _load_kubeconfig(
    configuration: Configuration, paths: list[Path], context: str | None, secrets: list[str]
) -> None:
    existing = [p for p in paths if p.exists()]
    shown = os.pathsep.join(str(p) for p in paths)
    if not existing:
        what = "no such file" if len(paths) == 1 else "none of these files exists"
        raise LiveConfigError(f"kubeconfig {shown}: {what}")
    documents = [(p, _read_kubeconfig(p)) for p in existing]
    contexts: list[str] = []
    current: str | None = None
    for _, data in documents:
        contexts.extend(n for n in _names(data, "contexts") if n not in contexts)
        secrets.extend(_tokens(data))
        if data.get("current-context"):
            current = str(data["current-context"])
    shown = os.pathsep.join(str(p) for p in existing)
    chosen = context if context is not None else current
    if chosen is None:
        raise LiveConfigError(f"kubeconfig {shown}: no current-context set and no context given")
    if chosen not in contexts:
        known = ", ".join(contexts) if contexts else "none"
        raise LiveConfigError(f"kubeconfig {shown}: no context {chosen!r} (contexts: {known})")
    try:
        await load_kube_config(
            config_file=os.pathsep.join(str(p) for p in existing),
            context=chosen,
            client_configuration=configuration,
            persist_config=False,
        )
    except (
        ConfigException,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        AssertionError,
    ) as error:
        detail = _scrub(str(error), secrets) or type(error).__name__
        detail = detail.removeprefix("Invalid kube-config file. ")
        raise LiveConfigError(f"kubeconfig {shown}, context {chosen!r}: {detail}") from error
    if not str(configuration.host or "").startswith(("http://", "https://")):
        raise LiveConfigError(
            f"kubeconfig {shown}, context {chosen!r}: the cluster has no server URL"
        )
