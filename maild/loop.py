"""Background loops: the spool worker, the outbox sender, the SMS sender and the IMAP workers.

Each runs ``step()`` over and over in a daemon thread. A step returns how long to wait
before the next one; the wait ends early when someone sets ``wakeup`` (new work committed)
or ``stop()`` is called. The delays after failures come from :func:`maild.clock.backoff`.
"""
from __future__ import annotations

import threading


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
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
        if self._thread is not None:
            raise RuntimeError(f"{self.thread_name} already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after the step in hand; returns at once."""
        self._stop.set()
        self.wakeup.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread; True when it ended within ``timeout`` seconds (or never ran)."""
        self.request_stop()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True
