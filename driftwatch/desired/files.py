"""Desired state from a local file or directory, Git-aware when it lies in a work tree."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from driftwatch.desired._collect import Collector
from driftwatch.desired._process import GIT_TIMEOUT, run
from driftwatch.desired.model import DesiredState

__all__ = ["load_path"]


@dataclass(frozen=True, slots=True)
class _WorkTree:
    top: Path
    head: str | None
    tracked: frozenset[str]  # repo-relative paths, as git prints them
    changed: frozenset[str]  # modified, staged, renamed, untracked, ...

    def commit_of(self, path: str) -> str | None:
        """HEAD for a tracked file without local changes, else None."""
        if path in self.tracked and path not in self.changed:
            return self.head
        return None


def _git(args: list[str], cwd: Path) -> bytes | None:
    """Output of a successful local git command; None if git is missing or failed."""
    try:
        proc = run(["git", "--no-optional-locks", *args], cwd=str(cwd), timeout=GIT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _z_paths(output: bytes) -> list[str]:
    return [os.fsdecode(p) for p in output.split(b"\0") if p]


def _changed(status: bytes) -> frozenset[str]:
    """Paths named by ``git status --porcelain -z`` (both sides of a rename)."""
    changed: set[str] = set()
    entries = status.split(b"\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        changed.add(os.fsdecode(entry[3:]).rstrip("/"))
        if entry[:1] in (b"R", b"C") or entry[1:2] in (b"R", b"C"):
            if i < len(entries):
                changed.add(os.fsdecode(entries[i]))
            i += 1
    return frozenset(changed)


def _work_tree(directory: Path) -> _WorkTree | None:
    """The Git work tree ``directory`` lies in, or None (no repository, or no git)."""
    top_out = _git(["rev-parse", "--show-toplevel"], directory)
    if top_out is None:
        return None
    top = Path(os.fsdecode(top_out.strip()))
    head_out = _git(["rev-parse", "--verify", "--quiet", "HEAD"], top)
    head = head_out.decode().strip() if head_out else None
    tracked_out = _git(["ls-files", "-z"], top) or b""
    status_out = _git(["status", "--porcelain", "-z", "--untracked-files=normal"], top)
    changed = _changed(status_out) if status_out is not None else None
    return _WorkTree(
        top=top,
        head=head,
        tracked=frozenset(_z_paths(tracked_out)),
        # If status failed, trust no file to match HEAD.
        changed=changed if changed is not None else frozenset(_z_paths(tracked_out)),
    )


def load_path(
    path: Path, *, default_namespace: str = "default", executor: Executor | None = None
) -> DesiredState:
    """Every NetworkPolicy in a manifest file or a directory tree.

    Directories are walked in name order, skipping hidden entries; a directory
    holding a ``kustomization.yaml`` (``.yml``, ``Kustomization``) is rendered
    with ``kubectl kustomize`` instead, and not descended into. Documents of
    other kinds are skipped.

    Provenance paths are relative to the Git repository root when ``path`` lies
    in a work tree, and then a policy's commit is HEAD if its file is tracked and
    unmodified (for a kustomization: if the whole work tree is clean), else None.
    Outside Git, paths are relative to ``path`` (a file's parent directory) and
    commits are None. ``Provenance.repo`` is None.

    ``executor``: worker processes (a ``ProcessPoolExecutor``) to parse the files
    of a large tree in parallel; results and errors are the same as without.

    Raises :class:`DesiredStateError` naming the file and line.
    """
    target = path.resolve()
    start = target if target.is_dir() else target.parent
    tree = _work_tree(start) if start.is_dir() else None
    if tree is not None:
        collector = Collector(
            base=tree.top.resolve(),
            default_namespace=default_namespace,
            commit_of=tree.commit_of,
            kustomize_commit=tree.head if not tree.changed else None,
            repo=None,
            executor=executor,
        )
    else:
        collector = Collector(
            base=start,
            default_namespace=default_namespace,
            commit_of=lambda _: None,
            kustomize_commit=None,
            repo=None,
            executor=executor,
        )
    collector.load(target)
    return DesiredState(
        policies=collector.policies,
        commit=tree.head if tree is not None else None,
        source=str(path),
    )
