"""Background loops: the spool worker, the outbox sender and the SMS sender.

Each runs ``step()`` over and over in a daemon thread. A step returns how long to wait
before the next one; the wait ends early when someone sets ``wakeup`` (new work committed)
or ``stop()`` is called.
"""
from __future__ import annotations

import threading


def backoff(failures: int, base: float, cap: float = 60.0) -> float:
    """``base`` doubled per consecutive failure, at most ``cap`` seconds."""
    return min(cap, base * 2 ** failures)


class Loop:
    thread_name = "loop"

    def __init__(self, wakeup: threading.Event | None = None) -> None:
        self.wakeup = wakeup or threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        """The thread was started and has not ended (what health checks report)."""
        return self._thread is not None and self._thread.is_alive()

    def step(self) -> float:
        """One round of work; return the seconds to wait before the next (0: at once)."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wakeup.clear()
            delay = self.step()
            if delay > 0:
                self.wakeup.wait(delay)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wakeup.set()
        if self._thread:
            self._thread.join(timeout)
