"""The metrics port: ``GET /healthz`` and ``GET /metrics`` (Prometheus text format).

Counters and the latency histogram are fed by the composition root as mails are
processed; queue depths and ages are read when Prometheus scrapes (one small query per
table), so a scrape always shows the database as it is, whichever instance did the work.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maild.service.health import Health

log = logging.getLogger("maild.service")


@dataclass(frozen=True)
class Snapshot:
    """Queue state read at scrape time."""

    spool_depth: int = 0
    spool_oldest_seconds: float = 0.0
    outbox: dict[str, int] = field(default_factory=dict)  # state → rows
    outbox_oldest_queued_seconds: float = 0.0
    outbox_deferred: int = 0  # queued again after a temporary failure
    raw_mails: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, status) → rows
    scheduler_leader: bool | None = None  # None: the scheduler is off
    scheduler_last_run: float | None = None  # Unix time of this instance's last run of the jobs
    imap_last_pass: dict[str, float | None] = field(default_factory=dict)  # account → Unix time of its last pass
    now: float = 0.0  # Unix time of the snapshot
    inbound_queue: int | None = None  # the shared inbound queue (spool.backend: database), else None


class Metrics:
    """maild's own registry (not the process-global one), so tests can build several."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.registry = CollectorRegistry()
        self.mails = Counter("maild_mails_processed", "Mails through the pipeline, by channel and outcome",
                             ["channel", "outcome"], registry=self.registry)
        self.latency = Histogram("maild_mail_processing_seconds",
                                 "From the start of a mail's batch to its commit", ["channel"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        # Per IMAP account (channel imap:<name>) too: "how long since that mailbox gave us mail".
        self.last_mail = Gauge("maild_last_mail_processed_timestamp_seconds",
                               "Unix time of the last mail committed, by channel", ["channel"], registry=self.registry)
        self.reloads = Counter("maild_config_reloads", "Configuration reloads, by result", ["result"],
                               registry=self.registry)
        self.received = Counter("maild_mails_received", "Mails taken in, by channel (SMTP/LMTP: accepted by the "
                                "listener; IMAP: fetched; pipe: taken from the spool)", ["channel"],
                                registry=self.registry)
        self.outbound = Counter("maild_outbound_attempts", "Delivery attempts to the smarthost, by result "
                                "(sent, deferred: retried later, failed: given up, unconfirmed)", ["result"],
                                registry=self.registry)
        self.caps = Counter("maild_caps_hit", "Automatic mails held back by a cap, by cap", ["cap"],
                            registry=self.registry)
        for result in ("sent", "deferred", "failed", "unconfirmed"):
            self.outbound.labels(result)  # present at 0 from the start, so rate() sees the first one
        self.registry.register(_QueueCollector(snapshot))

    def observe(self, channel: str, outcomes: Iterable[str], seconds: float) -> None:
        for outcome in outcomes:
            self.mails.labels(channel, outcome).inc()
            self.latency.labels(channel).observe(seconds)
        self.last_mail.labels(channel).set_to_current_time()


class _QueueCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        try:
            s = self.snapshot()
        except Exception as exc:  # the database is down: /metrics still answers, /healthz says why
            log.warning("metrics: cannot read the queues: %s", exc)
            return
        yield GaugeMetricFamily("maild_spool_depth", "Mails accepted and not yet processed", value=s.spool_depth)
        yield GaugeMetricFamily("maild_spool_oldest_seconds", "Age of the oldest mail waiting in the spool",
                                value=s.spool_oldest_seconds)
        outbox = GaugeMetricFamily("maild_outbox_mails", "Outbound mails by state", labels=["state"])
        for state in ("queued", "claimed", "sent", "failed"):
            outbox.add_metric([state], s.outbox.get(state, 0))
        yield outbox
        yield GaugeMetricFamily("maild_outbox_deferred", "Queued mails that already failed at least once "
                                "(temporary failures, retried with backoff)", value=s.outbox_deferred)
        yield GaugeMetricFamily("maild_outbox_oldest_queued_seconds", "Age of the oldest mail waiting to be sent",
                                value=s.outbox_oldest_queued_seconds)
        raw = GaugeMetricFamily("maild_raw_mails", "Stored raw mails by channel and status "
                                "(processed, duplicate, ignored, quarantined)", labels=["channel", "status"])
        for (channel, status), count in sorted(s.raw_mails.items()):
            raw.add_metric([channel, status], count)
        yield raw
        if s.inbound_queue is not None:
            yield GaugeMetricFamily("maild_inbound_queue_depth", "Mails acknowledged by any node and not yet "
                                    "processed (the shared inbound queue)", value=s.inbound_queue)
        if s.scheduler_leader is not None:
            yield GaugeMetricFamily("maild_scheduler_leader", "1 when this instance runs the scheduled jobs",
                                    value=int(s.scheduler_leader))
            yield GaugeMetricFamily("maild_scheduler_last_run_timestamp_seconds",
                                    "Unix time this instance last ran the scheduled jobs (0: not yet)",
                                    value=s.scheduler_last_run or 0)
        if s.imap_last_pass:
            seen = GaugeMetricFamily("maild_imap_last_pass_timestamp_seconds",
                                     "Unix time of the account's last complete look at its folder (0: none yet)",
                                     labels=["account"])
            lag = GaugeMetricFamily("maild_imap_lag_seconds", "Seconds since the account's last complete look at "
                                    "its folder (mail that arrived since may still wait there)", labels=["account"])
            for account, at in sorted(s.imap_last_pass.items()):
                seen.add_metric([account], at or 0)
                if at is not None:
                    lag.add_metric([account], max(0.0, s.now - at))
            yield seen
            yield lag


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Scrapes every 15 s would drown the log; errors still go through ``log_error``."""


class MetricsServer:
    """Serves the two endpoints in a thread; binding happens in ``__init__`` (a busy port raises there)."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: Callable[[], Health]) -> None:
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._health = health
        self._server = make_server(host, port, self._app, _Server, handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            health = self._health()
            body = json.dumps(health.as_json()).encode()
            start_response("200 OK" if health.ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /healthz or /metrics\n"]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
