"""``driftwatch run --config FILE``: watch the cluster and report drift as it happens.

Exit status: 0 after SIGINT/SIGTERM, 1 when a task fails (the reason on one line), 2 for
an invalid configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the daemon's imports (kubernetes_asyncio, aiohttp) load only for `run`
    from driftwatch.daemon.console import ConsoleNotifier
    from driftwatch.daemon.run import Daemon
    from driftwatch.settings import Settings

__all__ = ["add_parser", "console_for", "run", "serve"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "run",
        help="watch the cluster and report drift from Git as it happens",
        description="Watch the cluster's NetworkPolicies, compare every change with Git "
        "and report drift the moment it happens. Stops on SIGINT/SIGTERM.",
    )
    p.add_argument("--config", metavar="FILE", type=Path, required=True, help="driftwatch.yaml")
    p.set_defaults(handler=run)


def console_for(settings: Settings) -> ConsoleNotifier:
    """The console notifier, in the log's format (JSON lines when logs are JSON)."""
    from driftwatch.daemon.console import ConsoleNotifier
    from driftwatch.policy import Provenance
    from driftwatch.settings import render_link

    template = settings.link_template

    def link(source: Provenance | None) -> str | None:
        return render_link(template, source) if template else None

    json_logs = settings.log.format == "json" or (
        settings.log.format == "auto" and not sys.stdout.isatty()
    )
    return ConsoleNotifier(fmt="json" if json_logs else "text", link=link)


async def serve(daemon: Daemon) -> int:
    """Run ``daemon`` until a signal (0) or a failed task (1, reason on stderr)."""
    from driftwatch.daemon import TaskFailed, stop_on_signals

    with stop_on_signals(daemon.supervisor):
        try:
            await daemon.run()
        except TaskFailed as failure:
            print(f"driftwatch: error: {failure}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    import structlog

    from driftwatch.daemon import configure_logging
    from driftwatch.daemon.notifications import Notifications
    from driftwatch.daemon.notifier import Notifier
    from driftwatch.daemon.run import Daemon, DaemonTuning
    from driftwatch.live import LiveError
    from driftwatch.settings import SettingsError, load_settings
    from driftwatch.settings import require_desired as check_desired

    try:
        settings = load_settings(args.config)
        check_desired(settings, str(args.config))
    except SettingsError as error:
        print(f"driftwatch: error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log.level, settings.log.format, secrets=settings.secret_values())
    # With receivers configured, drift events become incidents delivered through them;
    # without, they are printed on the console (nothing is stored).
    notifiers: list[Notifier] = [] if settings.notifiers else [console_for(settings)]
    log = structlog.get_logger("driftwatch")
    tuning = DaemonTuning()

    async def main() -> int:
        # The HTTP server and its metrics, when `server:` is configured (built here, from
        # the settings; the daemon hands the server its side when it starts serving).
        metrics, server = None, None
        if settings.server is not None:
            from driftwatch import __version__
            from driftwatch.server import HttpServer, Metrics

            metrics = Metrics(version=__version__)
            server = HttpServer(settings.server, log=log, shutdown_timeout=tuning.grace / 2)
        notifications, shared = None, None
        if settings.notifiers:
            try:
                if settings.ha.store == "kubernetes":
                    # Incidents as DriftIncident objects (and, with ha.enabled, an election).
                    from driftwatch.daemon.leadership import open_shared_state

                    shared = await open_shared_state(settings, log=log)
                # (the daemon hooks its metrics into the outbox)
                notifications = await Notifications.open(
                    settings, log=log, store=shared.store if shared is not None else None
                )
            except (OSError, LiveError) as error:
                if shared is not None:
                    await shared.api.close()
                print(f"driftwatch: error: {error}", file=sys.stderr)
                return EXIT_FAILED
            configure_logging(
                settings.log.level,
                settings.log.format,
                secrets=settings.secret_values() | notifications.secrets(),
            )
        daemon = Daemon(
            settings,
            notifiers=notifiers,
            tuning=tuning,
            log=log,
            notifications=notifications,
            metrics=metrics,
            server=server,
            api=shared.api if shared is not None else None,
            leadership=shared.leadership if shared is not None else None,
        )
        git = settings.desired.git if settings.desired is not None else None
        if notifications is not None and git is not None:
            # A Git remote that stays unreachable, or a commit that cannot be read, becomes
            # an incident of its own (without receivers, the daemon's log says it).
            from driftwatch.daemon.desired_health import DesiredHealth

            notifier = notifications.notifier
            daemon.on_desired = DesiredHealth(
                notifications.pipeline,
                cluster=settings.cluster.name,
                url=git.url,
                recording=lambda: notifier.recording,
                log=log,
            )
        try:
            return await serve(daemon)
        finally:
            if notifications is not None:
                await notifications.close()
            if shared is not None:
                await shared.api.close()

    return asyncio.run(main())
