"""What the running app holds: settings and the pool. No money state in-process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from settlement.config import Settings


@dataclass
class AppState:
    settings: Settings
    dsn: str
    pool: asyncpg.Pool
    extras: dict[str, Any] = field(default_factory=dict)
