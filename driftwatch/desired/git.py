"""Desired state from a commit of a Git repository, via a bare mirror in driftwatch's cache.

The ``git`` command-line client does the work, so the user's SSH keys, credential
helpers and ``~/.gitconfig`` apply. The mirror is created with ``git init --bare``
and updated with ``git fetch --prune <url> ...`` on every call: the URL is never
written to disk (a token in it stays out of the mirror's config) and a rotated
token is used as soon as it is given. The user's own clones are never touched.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from driftwatch.desired._collect import KUSTOMIZATION_FILES, Collector
from driftwatch.desired._process import (
    GIT_NETWORK_TIMEOUT,
    GIT_TIMEOUT,
    first_error_line,
    redact,
    redact_url,
    run,
)
from driftwatch.desired.model import DesiredState, DesiredStateError

__all__ = ["default_cache_dir", "fetch_commit", "load_git", "mirror_dir"]

_REMOTE_HEAD = "refs/driftwatch/remote-head"
_FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_SCP_LIKE = re.compile(r"^[^/]*:")  # git: "host:path" if no slash comes before the first colon


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/driftwatch/git``, else ``~/.cache/driftwatch/git``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "driftwatch" / "git"


def _remote(url: str) -> str:
    """A URL as given, or a local path made absolute (git resolves nothing relative for us)."""
    if "://" in url or _SCP_LIKE.match(url):
        return url
    return os.path.abspath(os.path.expanduser(url))


def mirror_dir(url: str, cache_dir: Path | None = None) -> Path:
    """The bare mirror of ``url``: ``<cache_dir>/<first 16 hex digits of sha256(url)>``.

    The URL is hashed without credentials, so one repository has one mirror
    whichever token reaches it.
    """
    key = hashlib.sha256(redact_url(_remote(url)).encode()).hexdigest()[:16]
    return (cache_dir if cache_dir is not None else default_cache_dir()) / key


class _Repo:
    """Git commands on one mirror, with errors that name the repository and ref."""

    def __init__(self, mirror: Path, remote: str, where: str) -> None:
        self.mirror = mirror
        self.remote = remote
        self.where = where

    def git(self, what: str, args: list[str], *, timeout: float = GIT_TIMEOUT) -> bytes:
        try:
            proc = run(["git", "--git-dir", str(self.mirror), *args], timeout=timeout)
        except FileNotFoundError:
            raise DesiredStateError(
                f"{self.where}: reading a Git repository needs git on PATH"
            ) from None
        except OSError as error:
            raise DesiredStateError(f"{self.where}: cannot run git: {error}") from None
        except subprocess.TimeoutExpired:
            raise DesiredStateError(
                f"{self.where}: {what} timed out after {timeout:.0f}s"
            ) from None
        if proc.returncode != 0:
            line = first_error_line(proc.stderr.decode("utf-8", "replace"))
            raise DesiredStateError(f"{self.where}: {what} failed: {redact(line, self.remote)}")
        return proc.stdout

    def sync(self, with_head: bool) -> None:
        if not (self.mirror / "objects").is_dir():
            self.mirror.parent.mkdir(parents=True, exist_ok=True)
            self.git("git init", ["init", "--bare", "--quiet"])
        refspecs = list(_FETCH_REFSPECS)
        if with_head:
            refspecs.append(f"+HEAD:{_REMOTE_HEAD}")
        self.git(
            "git fetch",
            ["fetch", "--prune", "--quiet", "--no-tags", "--", self.remote, *refspecs],
            timeout=GIT_NETWORK_TIMEOUT,
        )

    def resolve(self, ref: str | None) -> str:
        name = _REMOTE_HEAD if ref in (None, "HEAD") else ref
        try:
            out = self.git(
                "resolving the ref",
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"],
            )
        except DesiredStateError:
            raise DesiredStateError(
                f"{self.where}: no branch, tag or commit {ref or 'HEAD'!r} in the repository"
            ) from None
        return out.decode().strip()

    def has_path(self, sha: str, subpath: str) -> bool:
        try:
            self.git("git cat-file", ["cat-file", "-e", f"{sha}:{subpath}"])
        except DesiredStateError:
            return False
        return True

    def needs_whole_tree(self, sha: str, subpath: str | None) -> bool:
        """Whether a kustomization under ``subpath`` may refer to files outside it."""
        if subpath is None:
            return False
        names = self.git("git ls-tree", ["ls-tree", "-r", "-z", "--name-only", sha, "--", subpath])
        return any(
            PurePosixPath(os.fsdecode(name)).name in KUSTOMIZATION_FILES
            for name in names.split(b"\0")
            if name
        )

    def extract(self, sha: str, subpath: str | None, into: Path) -> None:
        args = ["archive", "--format=tar", sha]
        if subpath is not None:
            args += ["--", subpath]
        data = self.git("git archive", args)
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                archive.extractall(into, filter=_safe_member)  # noqa: S202 - data filter
        except (tarfile.TarError, OSError) as error:
            raise DesiredStateError(f"{self.where}: cannot unpack commit {sha}: {error}") from None


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter, skipping (not failing on) links that leave the tree."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError:
        return None


@contextmanager
def _locked(mirror: Path) -> Iterator[None]:
    """Serialise processes using the same mirror (an advisory lock beside it)."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with open(mirror.with_name(mirror.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _clean_subpath(subpath: str | None, where: str) -> str | None:
    if subpath is None:
        return None
    parts = [p for p in PurePosixPath(subpath.replace("\\", "/")).parts if p not in ("", ".")]
    if subpath.startswith("/") or ".." in parts:
        raise DesiredStateError(
            f"{where}: subpath {subpath!r} must be a relative path inside the repository"
        )
    return "/".join(parts) or None


def _open_mirror(url: str, ref: str | None, cache_dir: Path | None) -> _Repo:
    """The mirror of ``url`` (its cache directory created), with errors naming ``url@ref``."""
    remote = _remote(url)
    where = f"{redact_url(remote)}@{ref or 'HEAD'}"
    repo = _Repo(mirror_dir(url, cache_dir), remote, where)
    try:
        repo.mirror.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise DesiredStateError(
            f"{where}: cannot use the cache directory {repo.mirror.parent}: {reason}"
        ) from None
    return repo


def fetch_commit(url: str, *, ref: str | None = None, cache_dir: Path | None = None) -> str:
    """Fetch ``url`` into its mirror and return the commit ``ref`` (default: the remote's
    HEAD) points at, without reading any file: the daemon's poll asks this first and loads
    the tree only when the commit changed. Raises :class:`DesiredStateError`."""
    repo = _open_mirror(url, ref, cache_dir)
    with _locked(repo.mirror):
        repo.sync(with_head=ref in (None, "HEAD"))
        return repo.resolve(ref)


def load_git(
    url: str,
    *,
    ref: str | None = None,
    subpath: str | None = None,
    cache_dir: Path | None = None,
    default_namespace: str = "default",
    executor: Executor | None = None,
) -> DesiredState:
    """Every NetworkPolicy at ``ref`` (default: the remote's HEAD) of the repository at ``url``.

    ``url`` is anything ``git fetch`` takes (a relative local path is made
    absolute). ``subpath`` limits loading to a file or directory of the
    repository. ``cache_dir`` holds the mirrors (default
    :func:`default_cache_dir`); the mirror of a URL is :func:`mirror_dir`.

    The commit's files are unpacked into a temporary directory (the whole tree
    if a kustomization under ``subpath`` may refer outside it), loaded as
    :func:`~driftwatch.desired.load_path` does, then removed. Provenance paths
    are relative to the repository root, ``commit`` is the resolved SHA and
    ``repo`` the URL without credentials.

    Raises :class:`DesiredStateError`: one line naming the repository and ref
    (never a password or token from the URL).

    ``executor``: worker processes to parse large trees in parallel (see ``load_path``).
    """
    remote = _remote(url)
    safe = redact_url(remote)
    where = f"{safe}@{ref or 'HEAD'}"
    sub = _clean_subpath(subpath, where)
    repo = _open_mirror(url, ref, cache_dir)
    with tempfile.TemporaryDirectory(prefix="driftwatch-git-") as tmp:
        root = Path(tmp).resolve()
        with _locked(repo.mirror):
            repo.sync(with_head=ref in (None, "HEAD"))
            sha = repo.resolve(ref)
            if sub is not None and not repo.has_path(sha, sub):
                raise DesiredStateError(f"{where}: no {sub!r} in commit {sha}")
            repo.extract(sha, None if repo.needs_whole_tree(sha, sub) else sub, root)
        collector = Collector(
            base=root,
            default_namespace=default_namespace,
            commit_of=lambda _: sha,
            kustomize_commit=sha,
            repo=safe,
            executor=executor,
        )
        try:
            collector.load(root / sub if sub is not None else root)
        except DesiredStateError as error:
            raise DesiredStateError(f"{where}: {redact(error.message, remote)}") from None
    source = f"{where}:{sub}" if sub is not None else where
    return DesiredState(policies=collector.policies, commit=sha, source=source)
