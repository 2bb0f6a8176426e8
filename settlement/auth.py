"""API tokens per organisation and role, stored hashed; the caller as an Actor.

A token is ``stl_`` + 43 url-safe characters (256 bits). Only its sha256 is
stored: the secret is shown once, at creation. Tokens are high-entropy, so a
fast hash is the right one (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, Literal

import msgspec

from settlement.errors import Forbidden, Unauthorized

Role = Literal["platform_admin", "sponsor_finance", "sponsor_approver", "validator", "supplier", "auditor"]
ROLES: tuple[Role, ...] = (
    "platform_admin",
    "sponsor_finance",
    "sponsor_approver",
    "validator",
    "supplier",
    "auditor",
)
# Which kind of organisation may hold which role.
ROLE_NEEDS_KIND: dict[str, str] = {
    "platform_admin": "platform",
    "sponsor_finance": "sponsor",
    "sponsor_approver": "sponsor",
    "auditor": "sponsor",  # an auditor reads the books of the one sponsor that issued the token
    "validator": "validator",
    "supplier": "supplier",
}
TOKEN_PREFIX = "stl_"  # noqa: S105 - a prefix, not a secret
# Revocation reaches every process within this many seconds.
TOKEN_CACHE_TTL_S = 5.0
TOKEN_CACHE_MAX = 10_000


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    token_id: int
    organisation_id: int
    role: str
    name: str
    kinds: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.name} (token {self.token_id})"


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class TokenCache:
    def __init__(self) -> None:
        self._items: dict[bytes, tuple[float, Actor | None]] = {}

    def get(self, key: bytes) -> tuple[bool, Actor | None]:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: bytes, actor: Actor | None) -> None:
        if len(self._items) >= TOKEN_CACHE_MAX:
            self._items.clear()
        self._items[key] = (time.monotonic() + TOKEN_CACHE_TTL_S, actor)

    def clear(self) -> None:
        self._items.clear()


_ACTOR_SELECT = (
    "SELECT t.id, t.organisation_id, t.role, t.name, o.kinds FROM api_tokens t "
    "JOIN organisations o ON o.id = t.organisation_id "
)


def _actor(row: Any) -> Actor:
    return Actor(
        token_id=row["id"],
        organisation_id=row["organisation_id"],
        role=row["role"],
        name=row["name"],
        kinds=tuple(row["kinds"]),
    )


async def load_actor(conn: Any, token_id: int) -> Actor:
    """The actor behind a token id, for jobs and seeding that act as a known token."""
    return _actor(await conn.fetchrow(_ACTOR_SELECT + "WHERE t.id = $1", token_id))


async def authenticate(pool: Any, cache: TokenCache, header: str | None) -> Actor:
    scheme, _, secret = (header or "").partition(" ")
    if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 9110 11.1)
        raise Unauthorized("send Authorization: Bearer <token>", code="token_missing")
    secret = secret.strip()
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        raise Unauthorized("unknown or revoked token", code="token_invalid")
    key = hash_token(secret)
    found, actor = cache.get(key)
    if not found:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(_ACTOR_SELECT + "WHERE t.token_hash = $1 AND t.revoked_at IS NULL", key)
        actor = _actor(row) if row else None
        cache.put(key, actor)
    if actor is None:
        raise Unauthorized("unknown or revoked token", code="token_invalid")
    return actor


def require(actor: Actor, *roles: str) -> None:
    if actor.role not in roles:
        raise Forbidden(
            f"role {actor.role} may not do this; it needs one of: {', '.join(roles)}", code="role_not_allowed"
        )


async def create_token(
    conn: Any, organisation_id: int, role: str, name: str, created_by: int | None
) -> tuple[int, str]:
    secret = new_secret()
    token_id: int = await conn.fetchval(
        "INSERT INTO api_tokens (organisation_id, role, name, token_hash, prefix, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        organisation_id,
        role,
        name,
        hash_token(secret),
        secret[:10],
        created_by,
    )
    return token_id, secret
