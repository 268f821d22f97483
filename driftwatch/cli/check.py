"""``driftwatch check``: one comparison of desired and live state, for CI and for humans.

Exit status: 0 when no drift reaches ``--fail-on``, 1 when one does, 2 on any error.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from driftwatch.cli._shards import Work, compare_and_render, workers
from driftwatch.cli.output import (
    assemble_json,
    assemble_text,
    drift_line_json,
    drift_text,
    summary_json,
    summary_text,
)
from driftwatch.desired import DesiredState, DesiredStateError, load_git, load_path
from driftwatch.desired.cluster_dir import load_cluster_dir
from driftwatch.drift import Drift
from driftwatch.live import LiveError, LiveSnapshotError, load_snapshot
from driftwatch.manifests.collector import paused_gc
from driftwatch.policy import NetworkPolicy
from driftwatch.rules import RuleEngine, Severity
from driftwatch.settings import Settings, SettingsError, load_settings

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
_FAIL_ON = [str(s) for s in Severity] + ["never"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "check",
        help="compare desired state (Git) with live state once",
        description="Compare the NetworkPolicies in Git with the live ones once. "
        "Exit status: 0 no drift at or above --fail-on, 1 drift, 2 error.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--desired", metavar="PATH", type=Path, help="manifest file or directory")
    src.add_argument("--desired-git", metavar="REPO", help="Git repository (URL or local path)")
    p.add_argument("--ref", help="Git ref to read (default: the remote's HEAD)")
    p.add_argument("--path", dest="subpath", metavar="SUBDIR", help="sub-path inside the repo")
    p.add_argument(
        "--live",
        metavar="PATH",
        type=Path,
        help="output of `kubectl get networkpolicies -A -o yaml|json`, or a directory of them",
    )
    p.add_argument(
        "--kubeconfig",
        metavar="FILE",
        type=Path,
        help="read the live state from the cluster of this kubeconfig (instead of --live)",
    )
    p.add_argument(
        "--live-context",
        metavar="CTX",
        help="read the live state from this kubeconfig context (default kubeconfig: "
        "$KUBECONFIG or ~/.kube/config)",
    )
    p.add_argument(
        "--topology",
        metavar="PATH",
        type=Path,
        help="manifests of the cluster's workloads and namespaces (Git's Deployments, or "
        "`kubectl get pods,namespaces -A -o yaml`): each drift then carries its blast radius",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument(
        "--fail-on",
        choices=_FAIL_ON,
        default="low",
        metavar="SEVERITY",
        help=f"lowest severity that makes the exit status 1 ({', '.join(_FAIL_ON)}; default: low)",
    )
    p.add_argument("--default-namespace", metavar="NS", help="namespace for manifests without one")
    p.add_argument("--cluster", default="default", metavar="NAME", help="cluster name in output")
    p.add_argument("--config", type=Path, metavar="FILE", help="configuration file (rules, ignore)")
    p.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"driftwatch check: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _desired(args: argparse.Namespace, namespace: str, executor: Executor | None) -> DesiredState:
    if args.desired is not None:
        return load_path(args.desired, default_namespace=namespace, executor=executor)
    return load_git(
        args.desired_git,
        ref=args.ref,
        subpath=args.subpath,
        cache_dir=args.cache_dir,
        default_namespace=namespace,
        executor=executor,
    )


@contextlib.contextmanager
def _workers() -> Iterator[Executor | None]:
    """Worker processes for parsing large desired trees, where there is more than one core.

    Forked up front, from this single-threaded process, before the loading thread starts.
    """
    count = workers()
    if count < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork"))
    try:
        pool.submit(int).result()  # start the workers now (fork starts them all at once)
        yield pool
    finally:
        # Waited for (idle workers exit at once): a pool left shutting down while the
        # interpreter exits races CPython's atexit hook, which may then write to the
        # manager's closed wake-up pipe (EBADF and a traceback on stderr).
        pool.shutdown(wait=True, cancel_futures=True)


def _live_source_error(args: argparse.Namespace) -> str | None:
    """--live, or the cluster (--kubeconfig and/or --live-context): exactly one source."""
    cluster = args.kubeconfig is not None or args.live_context is not None
    if args.live is not None and cluster:
        return "--live and --kubeconfig/--live-context are alternatives: give one of them"
    if args.live is None and not cluster:
        return "one of --live, --kubeconfig or --live-context is required"
    return None


def _live(args: argparse.Namespace, namespace: str) -> dict[tuple[str, str], NetworkPolicy]:
    if args.live is not None:
        return load_snapshot(args.live, default_namespace=namespace)
    # Imported here: kubernetes_asyncio takes a second to load, which --live never needs.
    from driftwatch.live.cluster import load_cluster

    return load_cluster(args.kubeconfig, args.live_context, default_namespace=namespace)


def _load(
    args: argparse.Namespace, namespace: str
) -> tuple[DesiredState, dict[tuple[str, str], NetworkPolicy]]:
    """Desired (in a thread feeding worker processes) and live (here) at the same time."""
    if args.desired is not None and (args.ref or args.subpath):
        raise DesiredStateError("--ref and --path go with --desired-git")
    with _workers() as pool, ThreadPoolExecutor(1) as thread, paused_gc(freeze=True):
        desired = thread.submit(_desired, args, namespace, pool)
        live = _live(args, namespace)
        return desired.result(), live


def _colour(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def run(args: argparse.Namespace) -> int:
    source_error = _live_source_error(args)
    if source_error is not None:
        return _fail(source_error)
    try:
        settings = load_settings(args.config) if args.config is not None else Settings()
        namespace = args.default_namespace or settings.default_namespace
        desired, live = _load(args, namespace)
        topology = (
            None
            if args.topology is None
            else load_cluster_dir(args.topology, default_namespace=namespace, top_level=True)
        )
    except (SettingsError, DesiredStateError, LiveSnapshotError, LiveError) as e:
        return _fail(str(e).replace("\n", "; "))
    except OSError as e:
        # What the loaders do not report themselves (an unusable cache or temporary
        # directory, no processes left to fork): still one line, status 2, no traceback.
        return _fail(_os_error(e))
    engine = RuleEngine(settings.rules.to_options())
    render: Callable[[Drift], str]
    if args.format == "json":
        render = drift_line_json
    else:
        render = functools.partial(drift_text, colour=_colour(sys.stdout))
    work = Work(
        desired.policies,
        live,
        engine,
        args.cluster,
        settings.ignore.to_rules(),
        render,
        topology=None if topology is None else topology.topology,
        sensitivity=settings.rules.sensitive_workloads.to_sensitivity(),
    )
    # Both states stay alive to the end, and the report's objects with them: the collector's
    # passes over millions of them would find nothing (a third of the time of a large check).
    with paused_gc(freeze=True):
        report = compare_and_render(work, workers())
    if args.fail_on == "never" or report.max_severity is None:
        status = EXIT_OK
    else:
        failing = report.max_severity >= Severity.parse(args.fail_on)
        status = EXIT_DRIFT if failing else EXIT_OK
    if args.format == "json":
        text = assemble_json(summary_json(report.counts, report.max_severity), report.drifts)
    else:
        summary = summary_text(
            len(report.drifts), report.counts, report.ignored, report.max_severity
        )
        text = assemble_text(summary, report.drifts)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `driftwatch check ... | head`: the reader left, which is no error, but the
        # drift is still there: keep the status (exiting 0 would claim there is none).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return status


def _os_error(error: OSError) -> str:
    if error.filename is None:
        return str(error)
    return f"{error.filename}: {error.strerror or type(error).__name__}"
