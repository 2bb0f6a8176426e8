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


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("SETTLEMENT_LOG_LEVEL", "verbose"),  # was accepted; logging fell back to info, uvicorn raised KeyError
        ("SETTLEMENT_WORKERS", "0"),
        ("SETTLEMENT_POOL_ACQUIRE_TIMEOUT_S", "-1"),
        ("SETTLEMENT_COMMAND_TIMEOUT_S", "nan"),
        ("SETTLEMENT_STATEMENT_TIMEOUT_MS", "-5"),
        ("SETTLEMENT_MAX_UPLOAD_BYTES", "0"),
        ("SETTLEMENT_HOLD_EXPIRY_INTERVAL_S", "0"),  # a job loop with no pause hammers the database
        ("SETTLEMENT_PAYOUT_SCHEDULE_INTERVAL_S", "-1"),
    ],
)
def test_out_of_range_setting_is_one_line_naming_the_variable(var: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={var: value})
    assert var in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "WARNING"])
def test_documented_log_levels_are_accepted(level: str) -> None:
    assert load_settings(env={"SETTLEMENT_LOG_LEVEL": level}).log_level == level.lower()
