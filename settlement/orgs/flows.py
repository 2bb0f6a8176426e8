"""Organisations and API tokens (platform admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ledger.accounts import create_ledger
from settlement import audit
from settlement.auth import ROLE_NEEDS_KIND, Actor, create_token
from settlement.errors import NotFound, ValidationFailed

MAX_ORGANISATIONS_PAGE = 200
MAX_TOKENS_PAGE = 200


class Organisation(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    kinds: list[str]
    ledger_id: int | None = None


class TokenCreated(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    organisation_id: int
    role: str
    name: str
    token: str  # shown once; only its hash is stored


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A token as lists show it: never its secret, only the first characters to recognise it by."""

    id: int
    organisation_id: int
    role: str
    name: str
    prefix: str
    revoked: bool
    created_at: datetime
    revoked_at: datetime | None = None


_TOKEN_COLS = "id, organisation_id, role, name, prefix, created_at, revoked_at"  # noqa: S105 - column names, not a secret


def _token_info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        organisation_id=row["organisation_id"],
        role=row["role"],
        name=row["name"],
        prefix=row["prefix"],
        revoked=row["revoked_at"] is not None,
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


async def create_organisation(
    conn: Any,
    actor: Actor | str,
    name: str,
    kinds: list[str],
    *,
    supplier_category: str | None = None,
    kvk: str | None = None,
    remittance: str = "supplier_reference",
) -> Organisation:
    kinds = sorted(set(kinds))
    if "supplier" in kinds and not supplier_category:
        raise ValidationFailed(
            "a supplier needs a category (bike_shop, sports_club, clothing_bank, library, ...)",
            code="supplier_category_required",
            errors=[{"field": "supplier_category", "message": "required for suppliers"}],
        )
    org_id: int = await conn.fetchval(
        "INSERT INTO organisations (name, kinds) VALUES ($1, $2) RETURNING id", name, kinds
    )
    ledger_id = None
    if "sponsor" in kinds:
        # one ledger per sponsor organisation (and currency)
        ledger_id = await create_ledger(conn, name, "EUR")
        await conn.execute("INSERT INTO sponsors (organisation_id, ledger_id) VALUES ($1, $2)", org_id, ledger_id)
    if "supplier" in kinds:
        await conn.execute(
            "INSERT INTO suppliers (organisation_id, category, kvk, remittance) VALUES ($1, $2, $3, $4)",
            org_id,
            supplier_category,
            kvk,
            remittance,
        )
    org = Organisation(id=org_id, name=name, kinds=kinds, ledger_id=ledger_id)
    await audit.record(
        conn,
        actor,
        "organisation.created",
        "organisation",
        org_id,
        sponsor_id=org_id if ledger_id else None,
        after=org,
    )
    return org


async def list_organisations(conn: Any, after: int, limit: int) -> list[Organisation]:
    rows = await conn.fetch(
        "SELECT o.id, o.name, o.kinds, s.ledger_id FROM organisations o LEFT JOIN sponsors s "
        "ON s.organisation_id = o.id WHERE o.id > $1 ORDER BY o.id LIMIT $2",
        after,
        min(limit, MAX_ORGANISATIONS_PAGE),
    )
    return [Organisation(id=r["id"], name=r["name"], kinds=list(r["kinds"]), ledger_id=r["ledger_id"]) for r in rows]


async def issue_token(conn: Any, actor: Actor | str, organisation_id: int, role: str, name: str) -> TokenCreated:
    org = await conn.fetchrow("SELECT kinds FROM organisations WHERE id = $1", organisation_id)
    if org is None:
        raise NotFound("no such organisation", code="organisation_not_found")
    needed = ROLE_NEEDS_KIND[role]
    if needed not in org["kinds"]:
        raise ValidationFailed(
            f"role {role} needs an organisation of kind {needed}",
            code="role_not_allowed_for_organisation",
            errors=[{"field": "role", "message": f"organisation is not a {needed}"}],
        )
    token_id, secret = await create_token(
        conn, organisation_id, role, name, actor.token_id if isinstance(actor, Actor) else None
    )
    sponsor_id = organisation_id if "sponsor" in org["kinds"] else None
    await audit.record(
        conn,
        actor,
        "token.created",
        "api_token",
        token_id,
        sponsor_id=sponsor_id,
        after={"organisation_id": organisation_id, "role": role, "name": name},
    )
    return TokenCreated(id=token_id, organisation_id=organisation_id, role=role, name=name, token=secret)


async def revoke_token(conn: Any, actor: Actor | str, token_id: int) -> TokenInfo:
    """Revoke a token (revoking it again changes nothing and answers the same)."""
    before = await conn.fetchrow(f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE id = $1 FOR UPDATE", token_id)
    if before is None:
        raise NotFound("no such token", code="token_not_found")
    if before["revoked_at"] is not None:
        return _token_info(before)
    row = await conn.fetchrow(
        f"UPDATE api_tokens SET revoked_at = now() WHERE id = $1 RETURNING {_TOKEN_COLS}",
        token_id,
    )
    sponsor_id = await conn.fetchval(
        "SELECT organisation_id FROM sponsors WHERE organisation_id = $1", row["organisation_id"]
    )
    await audit.record(
        conn,
        actor,
        "token.revoked",
        "api_token",
        token_id,
        sponsor_id=sponsor_id,
        after={"organisation_id": row["organisation_id"], "role": row["role"], "name": row["name"]},
    )
    return _token_info(row)


async def list_tokens(
    conn: Any, *, organisation_id: int | None, revoked: bool | None, after: int, limit: int
) -> list[TokenInfo]:
    """Tokens by id, optionally of one organisation and only (not) revoked ones."""
    rows = await conn.fetch(
        f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE id > $1 AND ($2::bigint IS NULL OR organisation_id = $2) "
        "AND ($3::boolean IS NULL OR (revoked_at IS NOT NULL) = $3) ORDER BY id LIMIT $4",
        after,
        organisation_id,
        revoked,
        min(limit, MAX_TOKENS_PAGE),
    )
    return [_token_info(r) for r in rows]
