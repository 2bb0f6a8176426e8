"""Settings: one typed struct read from the environment.

Every setting has a default that works on a laptop; the README lists them all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import msgspec

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting in the environment cannot be used; the message names it."""


Positive = Annotated[float, msgspec.Meta(gt=0)]  # seconds; NaN fails it too
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    data_dir: Path = REPO_ROOT / ".settlement"
    migrations_dir: Path = REPO_ROOT / "ops" / "migrations"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: AtLeastOne = 1
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    pool_min_size: int = 2
    pool_max_size: int = 10
    pool_acquire_timeout_s: Positive = 10.0
    command_timeout_s: Positive = 30.0
    statement_timeout_ms: Annotated[int, msgspec.Meta(ge=0)] = 30_000  # 0: none
    max_upload_bytes: AtLeastOne = 32 * 1024 * 1024
    hold_expiry_interval_s: Positive = 30.0
    payout_max_payments_per_file: int = 10_000
    payout_schedule_interval_s: Positive = 60.0
    environment: Literal["development", "production", "test"] = "development"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"


# name in the environment -> (field, parser)
_ENV: dict[str, str] = {
    "DATABASE_URL": "database_url",
    "SETTLEMENT_DATA_DIR": "data_dir",
    "SETTLEMENT_MIGRATIONS_DIR": "migrations_dir",
    "SETTLEMENT_HOST": "host",
    "SETTLEMENT_PORT": "port",
    "SETTLEMENT_WORKERS": "workers",
    "SETTLEMENT_LOG_FORMAT": "log_format",
    "SETTLEMENT_LOG_LEVEL": "log_level",
    "SETTLEMENT_POOL_MIN_SIZE": "pool_min_size",
    "SETTLEMENT_POOL_MAX_SIZE": "pool_max_size",
    "SETTLEMENT_POOL_ACQUIRE_TIMEOUT_S": "pool_acquire_timeout_s",
    "SETTLEMENT_COMMAND_TIMEOUT_S": "command_timeout_s",
    "SETTLEMENT_STATEMENT_TIMEOUT_MS": "statement_timeout_ms",
    "SETTLEMENT_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "SETTLEMENT_HOLD_EXPIRY_INTERVAL_S": "hold_expiry_interval_s",
    "SETTLEMENT_PAYOUT_MAX_PAYMENTS_PER_FILE": "payout_max_payments_per_file",
    "SETTLEMENT_PAYOUT_SCHEDULE_INTERVAL_S": "payout_schedule_interval_s",
    "SETTLEMENT_ENV": "environment",
}


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from the environment; a bad value raises SettingsError naming it."""
    source = dict(os.environ if env is None else env)
    raw: dict[str, object] = {}
    for var, field in _ENV.items():
        value = source.get(var)
        if value is not None and value != "":
            raw[field] = value
    if isinstance(raw.get("log_level"), str):
        raw["log_level"] = str(raw["log_level"]).lower()
    raw.update(overrides)
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        bad = _var_for(str(exc))
        named = f" {bad}" if bad else ""
        raise SettingsError(f"invalid setting{named}: {exc}") from None
    if settings.pool_min_size < 0 or settings.pool_max_size < max(1, settings.pool_min_size):
        raise SettingsError("SETTLEMENT_POOL_MAX_SIZE must be >= 1 and >= SETTLEMENT_POOL_MIN_SIZE")
    if not 1 <= settings.payout_max_payments_per_file <= 100_000:
        raise SettingsError("SETTLEMENT_PAYOUT_MAX_PAYMENTS_PER_FILE must be between 1 and 100000")
    if not 0 < settings.port < 65536:
        raise SettingsError("SETTLEMENT_PORT must be between 1 and 65535")
    return settings


def _dec_hook(tp: type, obj: object) -> object:
    if tp is Path and isinstance(obj, str | Path):
        return Path(obj).expanduser()
    raise NotImplementedError


def _var_for(message: str) -> str | None:
    for var, field in _ENV.items():
        if f"`$.{field}`" in message:
            return var
    return None
