"""Receiver types by ``type:`` name: the built-in ones and those other packages ship through
the entry point group ``driftwatch.notifiers`` (each entry point loads a ``ReceiverType``)."""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from driftwatch.notify.model import ReceiverType

__all__ = ["ENTRY_POINT_GROUP", "RegistryError", "builtin_types", "receiver_types"]

ENTRY_POINT_GROUP = "driftwatch.notifiers"


def builtin_types() -> dict[str, ReceiverType]:
    """The receiver types driftwatch ships (imported when first asked for: they load HTTP
    clients, which ``check`` never needs)."""
    from driftwatch.notify import alertmanager, console, pagerduty, slack, webhook  # noqa: PLC0415 - see above

    types = (slack, pagerduty, webhook, alertmanager, console)
    return {t.RECEIVER.name: t.RECEIVER for t in types}


class RegistryError(Exception):
    """A plugin's entry point does not load a usable ``ReceiverType``."""


@functools.cache
def receiver_types() -> dict[str, ReceiverType]:
    """Every known receiver type; a plugin may not replace a built-in one."""
    builtin = builtin_types()
    found = dict(builtin)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as e:
            raise RegistryError(
                f"entry point {point.name} ({point.value}) of {ENTRY_POINT_GROUP} failed to "
                f"load: {type(e).__name__}: {e}"
            ) from e
        if not isinstance(loaded, ReceiverType):
            raise RegistryError(
                f"entry point {point.name} ({point.value}) is not a driftwatch ReceiverType"
            )
        if loaded.name in builtin:
            raise RegistryError(f"entry point {point.name} redefines built-in type {loaded.name}")
        found[loaded.name] = loaded
    return found
