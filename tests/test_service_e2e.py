"""Operating `maild run` from outside: reload, the metrics port, logs, a busy port, --version."""
from __future__ import annotations

import json
import re
import signal
import smtplib
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from conftest import AGENT, HELPDESK, free_port, mail, make_env, write_config
from daemons import wait_for
from smtpsink import Sink

pytestmark = pytest.mark.slow
MAILD = [sys.executable, "-m", "maild"]
VIP = '''\
keywords:
  "#vip": {tags: [vip], who: anyone}
'''


class Running:
    """`maild run` in a subprocess with its log in a file."""

    def __init__(self, tmp_path: Path, **extra: str) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.extra = extra
        self.config = self.write()
        self.log = tmp_path / "maild.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cli_config = self.config

    def write(self, **more: str) -> Path:
        sections = {"smtp_port": str(self.port), **self.extra, **more}
        return write_config(self.dir, f"sqlite:///{self.dir / 'maild.db'}", **sections)

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*MAILD, "--config", str(self.config), "run"], stdout=out, stderr=out)
        wait_for(lambda: "maild running" in self.text(), 30, "maild running")

    def text(self) -> str:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"maild exited with {self.proc.returncode}:\n{self.log.read_text()}")
        return self.log.read_text(errors="replace")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MAILD, "--config", str(self.cli_config), *args], capture_output=True, text=True,
                              timeout=60)

    def tickets(self) -> list[dict]:
        return json.loads(self.cli("tickets", "list", "--json").stdout)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    metrics_port = free_port()
    r = Running(tmp_path, metrics=f"metrics: {{host: 127.0.0.1, port: {metrics_port}}}\n",
                outbound=f"outbound:\n  smtp: {{host: 127.0.0.1, port: {free_port()}}}\n")  # nothing listens
    r.metrics_port = metrics_port  # type: ignore[attr-defined]
    yield r
    if r.proc and r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(10)


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("maria@cliente.example.com.br", [HELPDESK], raw)


def tags_of(r: Running, subject: str) -> list[str]:
    [ticket] = [t for t in r.tickets() if t["subject"].startswith(subject)]
    return json.loads(r.cli("tickets", "show", str(ticket["id"]), "--json").stdout)["tags"]


def test_reload_takes_new_keywords_without_dropping_an_open_session(running: Running) -> None:
    r = running
    r.start()
    send(r.port, mail("Antes #vip", message_id="<before@cliente.example>"))
    wait_for(lambda: len(r.tickets()) == 1, 20, "the first ticket")
    assert tags_of(r, "Antes") == []

    session = smtplib.SMTP("127.0.0.1", r.port, timeout=10)  # open across the reload
    session.ehlo()
    r.write(keywords=VIP)
    done = r.cli("reload")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: "re-read; agents, keywords" in r.text(), 20, "the reload line")
    session.sendmail("maria@cliente.example.com.br", [HELPDESK], mail("Depois #vip", message_id="<after@c.example>"))
    session.quit()
    wait_for(lambda: len(r.tickets()) == 2, 20, "the second ticket")
    assert tags_of(r, "Depois") == ["vip"]
    assert r.stop() == 0


def test_invalid_file_on_sighup_is_logged_with_file_line_and_key_and_maild_keeps_running(running: Running) -> None:
    r = running
    r.write(keywords=VIP)
    r.start()
    text = r.config.read_text()
    r.cli_config = r.dir / "valid.yaml"  # the read commands below keep a valid file
    r.cli_config.write_text(text)
    r.config.write_text(text + "workflow:\n  reopen_dayz: 3\n")
    line = len(text.splitlines()) + 2
    refused = subprocess.run([*MAILD, "--config", str(r.config), "reload"], capture_output=True, text=True, timeout=60)
    # the command checks the file first and says why
    assert refused.returncode == 78 and f"{r.config}:{line}: workflow.reopen_dayz: unknown key" in refused.stderr
    assert r.proc is not None
    r.proc.send_signal(signal.SIGHUP)  # what logrotate or systemctl reload would send anyway
    wait_for(lambda: "reload refused" in r.text(), 20, "the refusal")
    assert f"{r.config}:{line}: workflow.reopen_dayz: unknown key" in r.text()
    send(r.port, mail("Ainda #vip"))  # still running, on the old file
    wait_for(lambda: len(r.tickets()) == 1, 20, "the ticket")
    assert tags_of(r, "Ainda") == ["vip"]
    assert r.stop() == 0


def test_reload_names_settings_that_need_a_restart(running: Running) -> None:
    r = running
    r.start()
    r.write(smtp_port=str(free_port()))
    assert r.cli("reload").returncode == 0
    wait_for(lambda: "only after a restart: smtp_server" in r.text(), 20, "the restart-only warning")
    with smtplib.SMTP("127.0.0.1", r.port, timeout=10) as smtp:  # still on the old port
        assert smtp.noop()[0] == 250


def test_reload_without_a_daemon_says_so(tmp_path: Path) -> None:
    r = Running(tmp_path)
    done = r.cli("reload")
    assert done.returncode == 69 and "no running maild" in done.stderr


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_healthz_and_metrics_over_http(running: Running) -> None:
    r = running
    r.start()
    base = f"http://127.0.0.1:{r.metrics_port}"  # type: ignore[attr-defined]
    status, body = get(base + "/healthz")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok" and health["parts"] == {"database": True, "listener": True,
                                                             "spool_worker": True, "sender": True}
    send(r.port, mail("Medido"))
    # A different mail (the same one again within minutes would join the first ticket).
    send(r.port, mail("Medido outra vez", message_id="<dup@c.example>"))
    send(r.port, mail("Medido outra vez", message_id="<dup@c.example>"))

    def processed() -> str:
        return get(base + "/metrics")[1]

    wait_for(lambda: 'maild_mails_processed_total{channel="smtp",outcome="duplicate"} 1.0' in processed(), 20,
             "the duplicate counted")
    text = processed()
    assert 'maild_mails_processed_total{channel="smtp",outcome="created"} 2.0' in text
    assert re.search(r'maild_mail_processing_seconds_count\{channel="smtp"\} 3\.0', text)
    assert 'maild_raw_mails{channel="smtp",status="processed"} 2.0' in text
    assert "maild_spool_depth 0.0" in text and 'maild_outbox_mails{state="queued"}' in text
    # The smarthost is not there: the acknowledgements fail once and wait for a retry.
    wait_for(lambda: re.search(r"^maild_outbox_deferred [1-9]", processed(), re.M) is not None, 30,
             "deferred outbound mail")
    assert re.search(r'^maild_outbound_attempts_total\{result="deferred"\} [1-9]', processed(), re.M)
    assert re.search(r'^maild_last_mail_processed_timestamp_seconds\{channel="smtp"\} 1\.[0-9.e+]+$', text, re.M)
    assert get(base + "/nothing")[0] == 404
    assert r.stop() == 0


def test_log_has_no_library_chatter_and_json_format_is_one_object_per_line(tmp_path: Path) -> None:
    r = Running(tmp_path, logging="logging: {format: json}\n",
                scheduler="scheduler: {unaccepted_minutes: 0, digest: {enabled: false}}\n")
    r.start()
    send(r.port, mail("Registrado"))
    wait_for(lambda: "created" in r.text(), 20, "the mail's line")
    assert r.stop() == 0
    records = [json.loads(line) for line in r.log.read_text().splitlines()]
    assert {rec["level"] for rec in records} <= {"INFO", "WARNING"}
    assert not [rec for rec in records if not rec["logger"].startswith("maild")], "library lines at INFO"
    assert any(rec["logger"] == "maild.processor" and "created" in rec["message"] for rec in records)


def test_busy_port_is_one_line_and_exit_69(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port))
        done = subprocess.run([*MAILD, "--config", str(config), "run"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 69
    assert done.stderr.strip().splitlines()[-1].startswith(f"maild: cannot open the SMTP listener on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr


def test_busy_metrics_port_is_one_line_too(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(free_port()),
                              metrics=f"metrics: {{port: {port}}}\n")
        done = subprocess.run([*MAILD, "--config", str(config), "run"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 69 and "Traceback" not in done.stderr
    assert f"cannot open the metrics port on 127.0.0.1:{port}" in done.stderr


def test_unusable_storage_path_is_one_line_and_exit_73(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file where a directory should be")
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(free_port()))
    config.write_text(config.read_text().replace(str(tmp_path / "storage"), str(tmp_path / "afile" / "storage")))
    done = subprocess.run([*MAILD, "--config", str(config), "run"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 73
    assert done.stderr == f"maild: cannot use {tmp_path / 'afile' / 'storage'}: Not a directory\n"


def test_version() -> None:
    done = subprocess.run([*MAILD, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"maild {version('maild')}"


def test_cli_from_any_directory_opens_the_files_next_to_the_config(tmp_path: Path) -> None:
    home = tmp_path / "etc"
    home.mkdir()
    config = home / "maild.yaml"
    config.write_text(f"helpdesk: {{address: {HELPDESK}, secret: s3cr3t-value}}\n"
                      "database: {url: sqlite:///var/maild.db}\nstorage: {path: var/storage}\nspool: {path: var/spool}\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    done = subprocess.run([*MAILD, "--config", str(config), "ingest", "--now"], input=mail("De longe"), capture_output=True,
                          cwd=tmp_path / "a", timeout=60)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([*MAILD, "--config", "../etc/maild.yaml", "tickets", "list", "--json"],
                            capture_output=True, text=True, cwd=tmp_path / "b", timeout=60)
    assert [t["subject"] for t in json.loads(listed.stdout)] == ["De longe"]
    assert not (tmp_path / "a" / "var").exists() and not (tmp_path / "b" / "var").exists()
    assert (home / "var" / "maild.db").is_file()


def test_cli_conventions_usage_64_config_after_the_command_quiet_pipe(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}",
                          metrics="metrics: {port: 9188}\n")
    wrong = subprocess.run([*MAILD, "tickets", "lst"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 64 and "invalid choice: 'lst'" in wrong.stderr
    after = subprocess.run([*MAILD, "check-config", "--config", str(config)], capture_output=True, text=True,
                           timeout=60)
    assert after.returncode == 0, after.stderr
    assert f"{config}: OK" in after.stdout and "metrics      http://127.0.0.1:9188/metrics" in after.stdout
    # A reader that stops after one line of a long output: no traceback about the closed pipe.
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    env.process(mail("Longo", body="linha comprida de texto\n" * 20000))  # ~480 KB: more than a pipe holds
    env.app.db.dispose()
    proc = subprocess.Popen([*MAILD, "tickets", "show", "1", "--json", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"{\n"
    proc.stdout.close()
    assert proc.wait(60) == 141
    with proc.stderr:
        assert proc.stderr.read() == b""


# -- one log line per mail; the metrics of caps, sending and the scheduler; reload reaches the scheduler --

FAST_SCHEDULER = "scheduler: {poll_seconds: 0.5, leader_retry_seconds: 0.5, unaccepted_minutes: 0, " \
                 "digest: {enabled: %s, time: '00:00'}}\n"


@pytest.fixture
def with_sink(tmp_path: Path) -> Iterator[tuple[Running, Sink]]:
    sink = Sink().start()
    metrics_port = free_port()
    r = Running(tmp_path, metrics=f"metrics: {{host: 127.0.0.1, port: {metrics_port}}}\n",
                outbound=f"outbound:\n  smtp: {{host: 127.0.0.1, port: {sink.port}}}\n"
                         "  retry: {first_seconds: 0.3, max_seconds: 1, poll_seconds: 0.2}\n"
                         "  limits: {per_address_burst: {count: 1, minutes: 1}}\n",
                scheduler=FAST_SCHEDULER % "false")
    r.metrics_port = metrics_port  # type: ignore[attr-defined]
    yield r, sink
    if r.proc and r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(10)
    sink.stop()


def test_each_mail_has_one_log_line_with_its_outcome_ticket_rules_channel_and_ms(tmp_path: Path) -> None:
    r = Running(tmp_path, logging="logging: {format: json}\n")
    r.start()
    send(r.port, mail("Uma linha", message_id="<one-line@c.example>"))
    send(r.port, mail("Uma linha", message_id="<one-line@c.example>"))  # the same mail again
    wait_for(lambda: r.text().count("outcome=") == 2, 20, "two mail lines")
    assert r.stop() == 0
    lines = [json.loads(line) for line in r.log.read_text().splitlines()]
    mails = [rec for rec in lines if rec["logger"] == "maild.processor" and "outcome" in rec]
    assert [(m["mail"], m["channel"], m["outcome"], m["ticket"]) for m in mails] == [
        ("<one-line@c.example>", "smtp", "created", 1), ("<one-line@c.example>", "smtp", "duplicate", 1)]
    assert "thread:new" in mails[0]["rules"].split(",") and isinstance(mails[0]["ms"], int)
    assert mails[0]["message"].startswith("mail <one-line@c.example> channel=smtp outcome=created ticket=1 rules=")


def test_text_log_line_per_mail(running: Running) -> None:
    r = running
    r.start()
    send(r.port, mail("Em texto", message_id="<text-line@c.example>"))
    wait_for(lambda: "outcome=created" in r.text(), 20, "the mail's line")
    assert re.search(r"maild\.processor: mail <text-line@c\.example> channel=smtp outcome=created ticket=1 "
                     r"rules=\S*thread:new\S* ms=\d+", r.text())
    assert r.stop() == 0


def test_metrics_count_caps_hit_sending_results_and_the_scheduler(with_sink: tuple[Running, Sink]) -> None:
    r, sink = with_sink
    r.start()
    base = f"http://127.0.0.1:{r.metrics_port}"  # type: ignore[attr-defined]
    send(r.port, mail("Primeiro pedido"))
    sink.wait_for(1)
    send(r.port, mail("Segundo pedido, logo depois"))  # one automatic mail per minute: held

    def metrics() -> str:
        return get(base + "/metrics")[1]

    wait_for(lambda: 'maild_caps_hit_total{cap="per_address_burst"} 1.0' in metrics(), 20, "the cap counted")
    # Two agent notifications and one acknowledgement: the second one was held.
    wait_for(lambda: len(sink.received) == 3, 20, "the notifications")
    wait_for(lambda: 'maild_outbound_attempts_total{result="sent"} 3.0' in metrics(), 20, "three sent")
    assert len(sink.to("maria@cliente.example.com.br")) == 1
    text = metrics()
    assert 'maild_outbound_attempts_total{result="deferred"} 0.0' in text
    assert 'maild_mails_received_total{channel="smtp"} 2.0' in text
    assert "maild_scheduler_leader 1.0" in text
    found = re.search(r"^maild_scheduler_last_run_timestamp_seconds (\S+)$", text, re.M)
    assert found and float(found.group(1)) > 1.7e9
    assert r.stop() == 0


def test_reload_gives_the_scheduler_the_new_file(with_sink: tuple[Running, Sink]) -> None:
    r, sink = with_sink
    r.start()
    wait_for(lambda: "this instance is the leader" in r.text(), 20, "the scheduler leading")
    send(r.port, mail("Preciso de ajuda"))  # an unassigned ticket: the digest has something to say
    wait_for(lambda: r.tickets(), 30, "the ticket")
    r.write(scheduler=FAST_SCHEDULER % "true")  # the daily digest, due since midnight
    assert r.cli("reload").returncode == 0
    wait_for(lambda: "re-read;" in r.text(), 20, "the reload line")
    assert "the scheduler's jobs too" in r.text() and "only after a restart" not in r.text()

    def digests() -> list:
        return [m for m in sink.received if "your tickets on" in str(m.message["Subject"])]
    wait_for(digests, 30, "the digest")
    assert digests()[0].rcpt_tos == [AGENT]
    assert r.stop() == 0
