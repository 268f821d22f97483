"""One switch for the cyclic garbage collector, shared by every thread that builds many
long-lived objects (desired files in the loader thread, list pages on the event loop).

Loading 10,000 policies allocates millions of containers that all stay alive, so the
collector's full passes find nothing to free and cost a third of the time, and on the event
loop one pass is a 100 ms stall. Reference counting still frees everything as usual.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["paused_gc"]


class _Switch:
    """Nested pauses, from any thread, share one: the collector comes back on only when the
    last one ends, and only if it was on when the first began."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False
        self._freeze = False

    def enter(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def exit(self, *, freeze: bool) -> None:
        with self._lock:
            self._freeze = self._freeze or freeze
            self._depth -= 1
            if self._depth == 0:
                if self._freeze:
                    # What is alive now is long-lived: out of future collections' way.
                    gc.freeze()
                    self._freeze = False
                if self._was_enabled:
                    gc.enable()


_SWITCH = _Switch()  # the collector is process-wide; so is its switch


@contextlib.contextmanager
def paused_gc(*, freeze: bool = False) -> Iterator[None]:
    """No cyclic garbage collection during the block.

    ``freeze``: if the block completes, move every object alive when the last pause ends to
    the permanent generation (:func:`gc.freeze`), so later collections skip them (policies
    hold no reference cycles, so nothing that would need the collector is kept by this).
    """
    _SWITCH.enter()
    completed = False
    try:
        yield
        completed = True
    finally:
        _SWITCH.exit(freeze=freeze and completed)
