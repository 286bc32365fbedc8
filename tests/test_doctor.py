"""`maild doctor` against real peers: a smarthost sink, a dead IMAP port, a fresh database."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port, need_server, write_config
from maild.config import load_config
from maild.service.doctor import Level, postfix, run, storage
from smtpsink import Sink

MAILD = [sys.executable, "-m", "maild"]


def doctor(config: Path) -> tuple[int, dict[str, dict[str, str]]]:
    done = subprocess.run([*MAILD, "--config", str(config), "doctor", "--json"], capture_output=True, text=True,
                          timeout=120)
    return done.returncode, {f["check"]: f for f in json.loads(done.stdout)}


def outbound(port: int) -> str:
    return f"outbound:\n  smtp: {{host: 127.0.0.1, port: {port}}}\n"


def test_doctor_passes_a_healthy_setup_and_names_a_missing_migration(tmp_path: Path, sink: Sink) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", outbound=outbound(sink.port))
    code, found = doctor(config)
    assert code == 69
    assert found["migrations"]["level"] == "fail" and "maild db upgrade" in found["migrations"]["fix"]
    assert subprocess.run([*MAILD, "--config", str(config), "db", "upgrade"], capture_output=True,
                          timeout=120).returncode == 0
    code, found = doctor(config)
    assert code == 0, found
    assert found["smarthost"]["level"] == "ok" and f"127.0.0.1:{sink.port} answered EHLO" in found["smarthost"]["detail"]
    assert found["storage"]["level"] == found["spool"]["level"] == found["database"]["level"] == "ok"
    assert found["secret"]["level"] == "warn"  # the test file writes helpdesk.secret inline
    assert sink.received == []  # nothing was sent


def test_doctor_says_what_to_fix_for_a_dead_smarthost_and_imap(tmp_path: Path) -> None:
    dead = free_port()
    imap = (f"imap:\n  - name: caixa\n    host: 127.0.0.1\n    port: {dead}\n    ssl: false\n"
            "    username: suporte\n    password: x\n")
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", outbound=outbound(dead), imap=imap)
    human = subprocess.run([*MAILD, "--config", str(config), "doctor"], capture_output=True, text=True, timeout=120)
    assert human.returncode == 69
    assert f"FAIL  smarthost    smarthost 127.0.0.1:{dead}: ConnectionRefusedError" in human.stdout
    assert f"FAIL  imap caixa   suporte@127.0.0.1:{dead}" in human.stdout
    assert "fix: check imap[caixa] host, port" in human.stdout


def test_storage_that_cannot_be_written_fails(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    config = load_config(write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}"))
    config = config.model_copy(update={"storage": config.storage.model_copy(update={"path": str(tmp_path / "afile" / "s")})})
    [bad, good] = list(storage(config))
    assert bad.check == "storage" and bad.level is Level.FAIL and "cannot write" in bad.detail
    assert good.check == "spool" and good.level is Level.OK
    assert [f.check for f in run(config, (storage,))] == ["storage", "spool"]


def test_doctor_reads_postfix_line_length_limits_from_a_private_config_dir(tmp_path: Path, sink: Sink) -> None:
    if shutil.which("postconf") is None:
        need_server("postconf (Postfix) is not installed")
    postfix_dir = tmp_path / "postfix"
    postfix_dir.mkdir()
    (postfix_dir / "main.cf").write_text("lmtp_line_length_limit = 0\nsmtp_line_length_limit = 998\n")
    (postfix_dir / "master.cf").write_text("")
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", outbound=outbound(sink.port))
    done = subprocess.run([*MAILD, "--config", str(config), "doctor"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MAIL_CONFIG": str(postfix_dir)})
    assert f"OK    postfix      lmtp_line_length_limit = 0 ({postfix_dir})" in done.stdout
    assert "WARN  postfix      smtp_line_length_limit = 998: Postfix's SMTP client" in done.stdout
    assert "fix: postconf -e smtp_line_length_limit=0 && postfix reload" in done.stdout
    (postfix_dir / "main.cf").write_text("lmtp_line_length_limit = 0\nsmtp_line_length_limit = 0\n")
    done = subprocess.run([*MAILD, "--config", str(config), "doctor", "--json"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MAIL_CONFIG": str(postfix_dir)})
    assert [f["level"] for f in json.loads(done.stdout) if f["check"] == "postfix"] == ["ok", "ok"]


def test_doctor_without_a_postfix_configuration_skips_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}"))
    [missing] = postfix(config, postconf="no-such-postconf-here")
    assert missing.level is Level.OK and "not checked" in missing.detail
    if shutil.which("postconf") is not None:
        monkeypatch.setenv("MAIL_CONFIG", str(tmp_path / "nowhere"))
        [absent] = postfix(config)
        assert absent.level is Level.OK and "no configuration here" in absent.detail
