from __future__ import annotations

from pathlib import Path

import pytest

from settlement.config import SettingsError, load_settings


def test_defaults_work_on_a_laptop() -> None:
    s = load_settings(env={})
    assert s.database_url is None
    assert s.host == "127.0.0.1"
    assert s.port == 8000
    assert s.pgdata == s.data_dir / "pgdata"


def test_environment_is_read() -> None:
    s = load_settings(env={"SETTLEMENT_PORT": "9001", "SETTLEMENT_DATA_DIR": "/tmp/x", "SETTLEMENT_LOG_FORMAT": "json"})
    assert s.port == 9001
    assert s.data_dir == Path("/tmp/x")
    assert s.log_format == "json"


@pytest.mark.parametrize(
    ("var", "value"),
    [("SETTLEMENT_PORT", "eighty"), ("SETTLEMENT_PORT", "70000"), ("SETTLEMENT_LOG_FORMAT", "xml")],
)
def test_bad_setting_names_the_variable(var: str, value: str) -> None:
    with pytest.raises(SettingsError, match="SETTLEMENT_"):
        load_settings(env={var: value})
