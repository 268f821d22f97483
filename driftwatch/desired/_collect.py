"""Walk files and kustomizations, parse NetworkPolicies, attach provenance."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path

from driftwatch.desired._process import first_error_line, run
from driftwatch.desired.model import DesiredStateError
from driftwatch.manifests import (
    MANIFEST_SUFFIXES,
    Document,
    ManifestError,
    is_resource,
    paused_gc,
    read_documents,
    read_file,
)
from driftwatch.policy import NetworkPolicy, PolicyError, Provenance, parse_policy

__all__ = ["KUSTOMIZATION_FILES", "KUSTOMIZE_TIMEOUT", "Collector", "is_network_policy"]

PARALLEL_MIN_BYTES = 1 << 20
"""Below this much manifest text, handing files to worker processes costs more than it saves."""


def _read_one(job: tuple[Path, str]) -> list[Document] | tuple[str, int | None, str]:
    """Read one file in a worker process; errors come back as values (they pickle simply)."""
    path, display = job
    try:
        return read_file(path, display)
    except ManifestError as error:
        return (error.path, error.line, error.message)


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_TIMEOUT = 120.0
"""Seconds for one ``kubectl kustomize``."""

# extensions/v1beta1 NetworkPolicies were removed from Kubernetes in 1.16: reading
# them (and letting parse_policy reject the apiVersion) beats silently skipping them.
_POLICY_GROUPS = ("networking.k8s.io", "extensions")


def is_network_policy(document: Document) -> bool:
    """A Kubernetes NetworkPolicy (not e.g. Calico's ``projectcalico.org`` one)."""
    return any(is_resource(document.data, "NetworkPolicy", g) for g in _POLICY_GROUPS)


def kustomization_in(directory: Path) -> Path | None:
    """The kustomization file of ``directory``, if it has one."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


class Collector:
    """Accumulates the policies of one desired state.

    ``base`` is the directory display paths are relative to. ``commit_of`` gives
    the commit of a file from its display path; ``kustomize_commit`` is the commit
    of everything a kustomization renders.
    """

    def __init__(
        self,
        *,
        base: Path,
        default_namespace: str,
        commit_of: Callable[[str], str | None],
        kustomize_commit: str | None,
        repo: str | None,
        executor: Executor | None = None,
    ) -> None:
        self.base = base
        self.executor = executor
        self.default_namespace = default_namespace
        self.commit_of = commit_of
        self.kustomize_commit = kustomize_commit
        self.repo = repo
        self.policies: dict[tuple[str, str], NetworkPolicy] = {}

    def display(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.base)).as_posix()

    def load(self, target: Path) -> None:
        """Load a file or a directory (``target`` lies under ``base``).

        Files are read in walk order; with an ``executor`` (worker processes) and
        enough text, they are parsed in parallel, and the results still added in
        walk order, so errors and duplicates are reported as a sequential read would.
        """
        with paused_gc():
            if target.is_dir():
                jobs = list(self._directory(target))
            elif target.name in KUSTOMIZATION_FILES or target.is_file():
                jobs = [target]
            else:
                raise DesiredStateError(f"{self.display(target)}: no such file or directory")
            files = [j for j in jobs if j.name not in KUSTOMIZATION_FILES]
            parsed = (
                self._read_parallel(self.executor, files)
                if self.executor is not None and self._worth_parallel(files)
                else {}
            )
            for job in jobs:
                if job.name in KUSTOMIZATION_FILES:
                    self._kustomize(job)
                elif job in parsed:
                    self._documents(job, parsed[job])
                else:
                    self._file(job)

    def _worth_parallel(self, files: list[Path]) -> bool:
        if len(files) < 2:
            return False
        total = 0
        for path in files:
            try:
                total += path.stat().st_size
            except OSError:
                return False  # let the sequential read report it
        return total >= PARALLEL_MIN_BYTES

    def _read_parallel(
        self, executor: Executor, files: list[Path]
    ) -> dict[Path, list[Document] | tuple[str, int | None, str]]:
        jobs = [(path, self.display(path)) for path in files]
        chunk = max(1, len(jobs) // 32)
        return dict(zip(files, executor.map(_read_one, jobs, chunksize=chunk), strict=True))

    def _documents(self, path: Path, result: list[Document] | tuple[str, int | None, str]) -> None:
        if isinstance(result, tuple):
            raise DesiredStateError(str(ManifestError(*result)))
        commit = self.commit_of(self.display(path))
        for document in result:
            self._add(document, commit)

    def _directory(self, directory: Path) -> Iterator[Path]:
        """The files and kustomizations below ``directory``, in walk order."""
        kustomization = kustomization_in(directory)
        if kustomization is not None:
            yield kustomization
            return
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise DesiredStateError(f"{self.display(directory)}: cannot list: {reason}") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                yield from self._directory(path)
            elif entry.is_file() and entry.name.lower().endswith(MANIFEST_SUFFIXES):
                yield path

    def _file(self, path: Path) -> None:
        display = self.display(path)
        try:
            documents = read_file(path, display)
        except ManifestError as error:
            raise DesiredStateError(str(error)) from None
        commit = self.commit_of(display)
        for document in documents:
            self._add(document, commit)

    def _kustomize(self, kustomization: Path) -> None:
        """Render with ``kubectl kustomize``.

        The provenance of every rendered policy is the kustomization file, line 1:
        lines of the rendered output would point nowhere a user can look.
        """
        display = self.display(kustomization)
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise DesiredStateError(f"{display}: rendering a kustomization needs kubectl on PATH")
        try:
            proc = run([kubectl, "kustomize", str(kustomization.parent)], timeout=KUSTOMIZE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise DesiredStateError(
                f"{display}: kubectl kustomize timed out after {KUSTOMIZE_TIMEOUT:.0f}s"
            ) from None
        except OSError as error:
            raise DesiredStateError(f"{display}: cannot run kubectl: {error}") from None
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise DesiredStateError(
                f"{display}: kubectl kustomize failed: {first_error_line(stderr)}"
            )
        try:
            documents = read_documents(proc.stdout.decode("utf-8", "replace"), display)
        except ManifestError as error:
            raise DesiredStateError(
                f"{display}: kubectl kustomize output: {error.message}"
            ) from None
        for document in documents:
            self._add(Document(display, 1, document.data), self.kustomize_commit)

    def _add(self, document: Document, commit: str | None) -> None:
        if not is_network_policy(document):
            return
        where = f"{document.path}:{document.line}"
        try:
            policy = parse_policy(document.data, default_namespace=self.default_namespace)
        except PolicyError as error:
            raise DesiredStateError(f"{where}: {error}") from None
        key = (policy.namespace, policy.name)
        first = self.policies.get(key)
        if first is not None and first.source is not None:
            raise DesiredStateError(
                f"duplicate NetworkPolicy {policy.namespace}/{policy.name}: "
                f"{first.source.path}:{first.source.line} and {where}"
            )
        source = Provenance(document.path, document.line, commit, self.repo)
        self.policies[key] = replace(policy, source=source)
