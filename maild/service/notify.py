"""Tell the service manager how maild is doing (systemd's ``sd_notify`` protocol).

systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to a
``Type=notify`` service; the service sends newline-separated ``KEY=VALUE`` datagrams:
``READY=1`` once it accepts mail, ``RELOADING=1``/``READY=1`` around a reload,
``STOPPING=1`` on the way out, ``WATCHDOG=1`` at least every ``$WATCHDOG_USEC``/2.
Without ``$NOTIFY_SOCKET`` (a terminal, a test, another supervisor) every call does nothing.

The protocol is one ``sendto`` on a datagram socket; the libraries that wrap it are either
unmaintained (sdnotify) or need libsystemd's C headers (systemd-python), so it is here.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("maild.service")


class Notifier:
    """Sends state lines to ``$NOTIFY_SOCKET``; a no-op when the variable is unset."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace, spelt with a leading NUL on the wire.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds = _watchdog_seconds(env)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **state: str | int) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False when it could not be sent."""
        if not self.enabled:
            return False
        payload = "\n".join(f"{key.upper()}={value}" for key, value in state.items()).encode()
        try:
            with self._lock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, self.address)
        except OSError as exc:  # the manager went away: maild goes on, it is only unsupervised
            log.warning("cannot notify the service manager at %s: %s", self.address.replace("\0", "@"), exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self.send(ready=1, status=status, mainpid=os.getpid())

    def reloading(self) -> None:
        # systemd >= 253 wants a monotonic timestamp with RELOADING=1 (Type=notify-reload).
        self.send(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self, status: str = "stopping") -> None:
        self.send(stopping=1, status=status)

    def status(self, text: str) -> None:
        self.send(status=text)


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """The watchdog interval systemd asked for, if it is meant for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """Pings ``WATCHDOG=1`` every half interval while ``healthy()`` holds.

    A stuck maild (a wedged spool worker, a dead listener) stops pinging, and systemd
    restarts it: the ping says "the parts that take mail are alive", not "the process exists".
    """

    def __init__(self, notifier: Notifier, healthy: Callable[[], bool]) -> None:
        self.notifier = notifier
        self.healthy = healthy
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        interval = self.notifier.watchdog_seconds
        if not self.notifier.enabled or interval is None:
            return
        self._thread = threading.Thread(target=self._run, args=(interval / 2,), name="watchdog", daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            if self.healthy():
                self.notifier.send(watchdog=1)
            else:
                log.error("not healthy: watchdog ping withheld, the service manager will restart maild")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
