"""SIGTERM and SIGINT during training: finish the current step, then stop with a resumable checkpoint.

The first signal only sets a flag, which the loop reads after every step (and after every epoch); a
second Ctrl-C stops at once (a KeyboardInterrupt), as does a second SIGTERM.
"""

from __future__ import annotations

import signal
import threading

from vaekit.errors import EXIT_INTERRUPTED, EXIT_TERMINATED

EXIT_CODES = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


class StopSignals:
    """A context manager that turns SIGTERM and SIGINT into a flag (``received``) while it is open.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self):
        self.received: signal.Signals | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:  # the second signal: stop now
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(EXIT_TERMINATED)
        self.received = signal.Signals(signum)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.received]
