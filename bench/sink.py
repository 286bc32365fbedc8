"""The smarthost for the end-to-end benchmark: aiosmtpd on loopback, in its own process.

It runs apart from the benchmark's SMTP clients so neither steals the other's GIL, and
records for each mail it accepted only what the benchmark checks: when it arrived
(``time.monotonic()``, the same clock in every process on Linux), the envelope recipients,
the decoded Subject and In-Reply-To. The parent reads the running count and the time of the
last mail from shared values while the run goes on, and the records once at the end.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import threading
import time
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Record:
    at: float  # time.monotonic() when the DATA was accepted
    recipients: tuple[str, ...]
    subject: str
    in_reply_to: str


class _Handler:
    def __init__(self, count: Any, last: Any) -> None:
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.count, self.last = count, last
        self.parser = BytesHeaderParser(policy=default)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        head = envelope.content.split(b"\r\n\r\n", 1)[0]
        headers = self.parser.parsebytes(head)
        now = time.monotonic()
        record = Record(now, tuple(envelope.rcpt_tos), str(headers["Subject"] or ""), str(headers["In-Reply-To"] or ""))
        with self.lock:
            self.records.append(record)
        with self.count.get_lock():
            self.count.value += 1
            self.last.value = now
        return "250 2.0.0 queued"


def _serve(port: int, conn: multiprocessing.connection.Connection, count: Any, last: Any) -> None:
    handler = _Handler(count, last)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    conn.send("ready")
    while True:
        order = conn.recv()
        if order == "dump":
            with handler.lock:
                conn.send(list(handler.records))
        elif order == "stop":
            controller.stop()
            conn.send("stopped")
            return


class SinkProcess:
    """Start with :meth:`start`; ``count`` and ``last`` are live, :meth:`records` at the end."""

    def __init__(self, port: int) -> None:
        self.port = port
        ctx = multiprocessing.get_context("spawn")
        self._count = ctx.Value("q", 0)
        self._last = ctx.Value("d", 0.0)
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(port, child, self._count, self._last), daemon=True,
                                    name="bench-sink")

    def start(self) -> SinkProcess:
        self._process.start()
        if not self._conn.poll(30) or self._conn.recv() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def count(self) -> int:
        return int(self._count.value)

    @property
    def last(self) -> float:
        return float(self._last.value)

    def records(self) -> list[Record]:
        self._conn.send("dump")
        return self._conn.recv()

    def stop(self) -> None:
        if self._process.is_alive():
            self._conn.send("stop")
            self._conn.poll(10)
            self._process.join(10)
