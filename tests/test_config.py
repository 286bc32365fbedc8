"""The YAML config: a bad file stops maild with file, line, key and what is wrong."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from maild.config import DEFAULT_CONFIG, ConfigError, load_config

MAILD = [sys.executable, "-m", "maild"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "maild.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_default_config_is_valid() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.smtp_server.host == "127.0.0.1" and config.smtp_server.port == 2525
    assert config.database.url.startswith("sqlite:///var/")


def test_wrong_value_names_file_line_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "helpdesk:\n  address: support@x.example\nsmtp_server:\n  host: 127.0.0.1\n  port: seventy\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:5: smtp_server.port:" in str(err.value)


def test_misspelt_key_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, "helpdesk:\n  address: support@x.example\n  subjet_tag: X\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:3: helpdesk.subjet_tag: unknown key" in str(err.value)


def test_bad_address_in_agent_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "helpdesk:\n  address: support@x.example\nagents:\n  - email: ana\n    name: Ana\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:4: agents.0.email:" in str(err.value) and "not an e-mail address" in str(err.value)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "helpdesk:\n  address: support@x.example\n  name: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "not valid YAML" in str(err.value) and str(path) in str(err.value)


def test_missing_secret_env_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILD_TEST_NO_SUCH", raising=False)
    path = _write(tmp_path, "helpdesk:\n  address: support@x.example\n  secret_env: MAILD_TEST_NO_SUCH\n")
    with pytest.raises(ConfigError, match="MAILD_TEST_NO_SUCH"):
        load_config(path)


def test_check_config_command_explains_and_fails_on_bad_file(tmp_path: Path) -> None:
    good = subprocess.run([*MAILD, "--config", str(DEFAULT_CONFIG), "check-config"], capture_output=True, text=True)
    assert good.returncode == 0 and "SMTP on 127.0.0.1:2525" in good.stdout
    bad = _write(tmp_path, "helpdesk:\n  adress: support@x.example\n")
    result = subprocess.run([*MAILD, "--config", str(bad), "check-config"], capture_output=True, text=True)
    assert result.returncode == 78
    assert f"{bad}:2: helpdesk.adress: unknown key" in result.stderr
    assert "helpdesk.address: required key is missing" in result.stderr
