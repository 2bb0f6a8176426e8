"""Organisations and API tokens (platform admin)."""

from __future__ import annotations

from typing import Any

import msgspec

from ledger.accounts import create_ledger
from settlement import audit
from settlement.auth import ROLE_NEEDS_KIND, Actor, create_token
from settlement.errors import NotFound, ValidationFailed

MAX_ORGANISATIONS_PAGE = 200


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
    id: int
    organisation_id: int
    role: str
    name: str
    prefix: str
    revoked: bool


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


async def revoke_token(conn: Any, actor: Actor, token_id: int) -> TokenInfo:
    row = await conn.fetchrow(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 "
        "RETURNING id, organisation_id, role, name, prefix",
        token_id,
    )
    if row is None:
        raise NotFound("no such token", code="token_not_found")
    await audit.record(conn, actor, "token.revoked", "api_token", token_id)
    return TokenInfo(
        id=row["id"],
        organisation_id=row["organisation_id"],
        role=row["role"],
        name=row["name"],
        prefix=row["prefix"],
        revoked=True,
    )
