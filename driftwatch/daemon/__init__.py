"""``driftwatch run``: the long-running daemon (task supervision, logging, ...)."""

from driftwatch.daemon.logs import Redactor, configure_logging
from driftwatch.daemon.supervisor import (
    Supervisor,
    TaskFailed,
    install_signal_handlers,
    stop_on_signals,
)

__all__ = [
    "Redactor",
    "Supervisor",
    "TaskFailed",
    "configure_logging",
    "install_signal_handlers",
    "stop_on_signals",
]
