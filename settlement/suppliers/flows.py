"""Suppliers and their bank details: a change is a request that a sponsor
approver other than the requester accepts (four eyes). Payouts never use
pending or blocked details.

Suppliers are shared between sponsors, so no one sponsor may redirect what
the others pay (DESIGN.md "Security"). A sponsor has *dealings* with a
supplier when its ledger holds the supplier's payable account
(``payable:<supplier>``, made at the supplier's first reservation or
redemption on one of its vouchers).

- A sponsor's finance team may request a change only for a supplier it has
  dealings with (else 404, as for an unknown supplier); the supplier may
  request its own. One change is pending at a time: another organisation's
  pending request blocks a new one (409); the organisation that asked for it,
  or the supplier itself, replaces it.
- A change a sponsor's token requested is decided only by an approver of that
  same sponsor; one the supplier requested, by an approver of any sponsor
  with dealings with it, or of any sponsor while it has dealings with none
  (its first details). Never by the requesting token, and never by the
  supplier's own organisation (one that is sponsor and supplier both).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from settlement import audit
from settlement.auth import Actor
from settlement.banking import check_holder_name, check_iban
from settlement.errors import Conflict, Forbidden, NotFound

MAX_LIST = 500


class BankDetails(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    supplier_id: int
    iban: str
    bic: str | None
    holder_name: str
    state: str
    requested_at: datetime
    requested_by: int
    decided_by: int | None = None
    decided_at: datetime | None = None
    reason: str | None = None


class Supplier(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    category: str
    kvk: str | None
    remittance: str
    bank_details: BankDetails | None  # the active (or blocked) ones
    pending_change: BankDetails | None = None


_BD_COLS = "id, supplier_id, iban, bic, holder_name, state, requested_at, requested_by, decided_by, decided_at, reason"


def _dealings(supplier: str, sponsor: str | None) -> str:
    """SQL: has the sponsor (any sponsor, for None) dealings with the supplier? Both are SQL expressions."""
    scope = "" if sponsor is None else f" WHERE s.organisation_id = {sponsor}"
    return (
        "EXISTS (SELECT 1 FROM sponsors s JOIN accounts a ON a.ledger_id = s.ledger_id "
        f"AND a.code = 'payable:' || {supplier}{scope})"
    )


# The same columns of the request as ``b`` (joined with its token as ``t``).
_BD_COLS_B = ", ".join(f"b.{c}" for c in _BD_COLS.split(", "))
_REQUEST_AND_REQUESTER = "supplier_bank_details b JOIN api_tokens t ON t.id = b.requested_by"

# May the sponsor $1 decide the request b, made with the token t? (the module's docstring)
_DECIDABLE = (
    f"(b.supplier_id <> $1 AND CASE WHEN t.role = 'supplier' "
    f"THEN {_dealings('b.supplier_id', '$1')} OR NOT {_dealings('b.supplier_id', None)} "
    "ELSE t.organisation_id = $1 END)"
)


def _bd(r: Any) -> BankDetails:
    return BankDetails(**{k: r[k] for k in _BD_COLS.split(", ")})


async def get_supplier(conn: Any, actor: Actor, supplier_id: int) -> Supplier:
    # A supplier sees itself; sponsors and validators see the directory.
    if actor.role == "supplier" and actor.organisation_id != supplier_id:
        raise NotFound("no such supplier", code="supplier_not_found")
    row = await conn.fetchrow(
        "SELECT s.organisation_id, o.name, s.category, s.kvk, s.remittance FROM suppliers s "
        "JOIN organisations o ON o.id = s.organisation_id WHERE s.organisation_id = $1",
        supplier_id,
    )
    if row is None:
        raise NotFound("no such supplier", code="supplier_not_found")
    current = await conn.fetchrow(
        f"SELECT {_BD_COLS} FROM supplier_bank_details WHERE supplier_id = $1 AND state IN ('active', 'blocked')",
        supplier_id,
    )
    pending = await conn.fetchrow(
        f"SELECT {_BD_COLS} FROM supplier_bank_details WHERE supplier_id = $1 "
        "AND state = 'pending' ORDER BY id DESC LIMIT 1",
        supplier_id,
    )
    return Supplier(
        id=row["organisation_id"],
        name=row["name"],
        category=row["category"],
        kvk=row["kvk"],
        remittance=row["remittance"],
        bank_details=_bd(current) if current else None,
        pending_change=_bd(pending) if pending else None,
    )


async def list_suppliers(conn: Any, actor: Actor, after: int, limit: int) -> list[Supplier]:
    if actor.role == "supplier":
        return [await get_supplier(conn, actor, actor.organisation_id)]
    ids = await conn.fetch(
        "SELECT organisation_id FROM suppliers WHERE organisation_id > $1 ORDER BY 1 LIMIT $2",
        after,
        min(limit, MAX_LIST),
    )
    return [await get_supplier(conn, actor, r["organisation_id"]) for r in ids]


async def request_bank_details(
    conn: Any, actor: Actor, supplier_id: int, iban: str, bic: str | None, holder_name: str
) -> BankDetails:
    if not (actor.role == "supplier" and actor.organisation_id == supplier_id) and actor.role != "sponsor_finance":
        raise NotFound("no such supplier", code="supplier_not_found")
    # One bank-detail request per supplier at a time: each sees the pending one before it.
    exists = await conn.fetchval("SELECT 1 FROM suppliers WHERE organisation_id = $1 FOR NO KEY UPDATE", supplier_id)
    if not exists:
        raise NotFound("no such supplier", code="supplier_not_found")
    if actor.role == "sponsor_finance" and not await conn.fetchval(
        "SELECT " + _dealings("$1::bigint", "$2"), supplier_id, actor.organisation_id
    ):
        # a supplier this sponsor has never paid: it may not redirect what other sponsors pay it
        raise NotFound("no such supplier", code="supplier_not_found")
    compact, bic_ = check_iban(iban, bic)
    check_holder_name(holder_name)
    # A pending change blocks a new one, unless the new one comes from the organisation that
    # asked for the pending one (a correction) or from the supplier whose details they are:
    # no one cancels another organisation's request by asking for something else.
    pending = await conn.fetchrow(
        f"SELECT b.id, t.organisation_id FROM {_REQUEST_AND_REQUESTER} "
        "WHERE b.supplier_id = $1 AND b.state = 'pending' ORDER BY b.id DESC LIMIT 1",
        supplier_id,
    )
    if pending is not None and actor.organisation_id not in (pending["organisation_id"], supplier_id):
        raise Conflict(
            f"bank-detail change {pending['id']}, requested by another organisation, awaits a decision: "
            "a new request waits until it is approved or rejected",
            code="bank_details_change_pending",
            pending_request_id=pending["id"],
        )
    await conn.execute(
        "UPDATE supplier_bank_details SET state = 'superseded' WHERE supplier_id = $1 AND state = 'pending'",
        supplier_id,
    )
    row = await conn.fetchrow(
        f"INSERT INTO supplier_bank_details (supplier_id, iban, bic, holder_name, requested_by) "
        f"VALUES ($1, $2, $3, $4, $5) RETURNING {_BD_COLS}",
        supplier_id,
        compact,
        bic_,
        holder_name,
        actor.token_id,
    )
    bd = _bd(row)
    # in the trail of the sponsor whose finance team asked (a supplier's own request is decided by one)
    sponsor = actor.organisation_id if actor.role == "sponsor_finance" else None
    await audit.record(conn, actor, "bank_details.requested", "supplier", supplier_id, sponsor_id=sponsor, after=bd)
    return bd


async def list_pending(conn: Any, actor: Actor) -> list[BankDetails]:
    """The pending changes the caller's sponsor may decide (the module's docstring)."""
    if actor.role not in ("sponsor_approver", "sponsor_finance", "auditor"):
        raise Forbidden("only sponsor teams review bank-detail changes", code="role_not_allowed")
    rows = await conn.fetch(
        f"SELECT {_BD_COLS_B} FROM {_REQUEST_AND_REQUESTER} "
        f"WHERE b.state = 'pending' AND {_DECIDABLE} ORDER BY b.id LIMIT $2",
        actor.organisation_id,
        MAX_LIST,
    )
    return [_bd(r) for r in rows]


async def decide(conn: Any, actor: Actor, request_id: int, approve: bool, reason: str | None) -> BankDetails:
    if actor.role != "sponsor_approver":
        raise Forbidden("a sponsor approver decides bank-detail changes", code="role_not_allowed")
    row = await conn.fetchrow(
        f"SELECT {_BD_COLS_B}, {_DECIDABLE} AS decidable FROM {_REQUEST_AND_REQUESTER} WHERE b.id = $2 FOR UPDATE OF b",
        actor.organisation_id,
        request_id,
    )
    if row is None:
        raise NotFound("no such bank-detail request", code="bank_details_not_found")
    if row["supplier_id"] == actor.organisation_id:
        raise Forbidden(
            "four eyes: an organisation does not approve its own bank details, another sponsor must",
            code="approver_is_the_supplier",
        )
    if not row["decidable"]:
        # another sponsor's request, or a supplier this sponsor has no dealings with: not its to see
        raise NotFound("no such bank-detail request", code="bank_details_not_found")
    if row["state"] != "pending":
        raise Conflict(f"this request is already {row['state']}", code="bank_details_not_pending")
    if row["requested_by"] == actor.token_id:
        raise Forbidden(
            "four eyes: you requested this change, someone else must approve it",
            code="approver_must_differ_from_requester",
        )
    before = await conn.fetchrow(
        f"SELECT {_BD_COLS} FROM supplier_bank_details WHERE supplier_id = $1 AND state IN ('active', 'blocked')",
        row["supplier_id"],
    )
    if approve:
        await conn.execute(
            "UPDATE supplier_bank_details SET state = 'superseded' WHERE supplier_id = $1 "
            "AND state IN ('active', 'blocked')",
            row["supplier_id"],
        )
        # Lines that bounced on the old details are payable again.
        await conn.execute(
            "UPDATE payable_lines SET state = 'open' WHERE supplier_id = $1 AND state IN ('rejected', 'returned')",
            row["supplier_id"],
        )
    new = await conn.fetchrow(
        f"UPDATE supplier_bank_details SET state = $2, decided_by = $3, decided_at = now(), reason = $4 "
        f"WHERE id = $1 RETURNING {_BD_COLS}",
        request_id,
        "active" if approve else "rejected",
        actor.token_id,
        reason,
    )
    bd = _bd(new)
    await audit.record(
        conn,
        actor,
        "bank_details.approved" if approve else "bank_details.rejected",
        "supplier",
        row["supplier_id"],
        sponsor_id=actor.organisation_id,
        before=_bd(before) if before else None,
        after=bd,
    )
    return bd


async def block(
    conn: Any,
    actor: Actor | str,
    supplier_id: int,
    reason: str,
    *,
    details_id: int | None = None,
    sponsor_id: int | None = None,
) -> bool:
    """A payment bounced on account details: no payout until they are fixed.

    With ``details_id``, only those details are blocked: if the supplier has
    had new ones approved since, the bounce says nothing about them.
    Returns whether details were blocked (now or already).
    """
    before = await conn.fetchrow(
        f"SELECT {_BD_COLS} FROM supplier_bank_details WHERE supplier_id = $1 AND state IN ('active', 'blocked')",
        supplier_id,
    )
    if before is None or (details_id is not None and before["id"] != details_id):
        return False
    if before["state"] == "blocked":
        return True
    await conn.execute(
        "UPDATE supplier_bank_details SET state = 'blocked', reason = $2 WHERE id = $1", before["id"], reason
    )
    await audit.record(
        conn,
        actor,
        "bank_details.blocked",
        "supplier",
        supplier_id,
        sponsor_id=sponsor_id,
        before=_bd(before),
        after={"state": "blocked", "reason": reason},
    )
    return True
