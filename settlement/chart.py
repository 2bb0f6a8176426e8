"""The chart of accounts of a sponsor ledger (DESIGN.md "Chart of accounts").

The only place that turns business things into ledger account codes.
"""

from __future__ import annotations

from typing import Any

from ledger.accounts import ensure_accounts
from ledger.model import AccountSpec


def funding(code: str) -> str:
    return f"funding:{code}"


def fund(fund_id: int) -> str:
    return f"fund:{fund_id}"


def voucher(voucher_code: str) -> str:
    return f"voucher:{voucher_code}"


def payable(supplier_id: int) -> str:
    return f"payable:{supplier_id}"


def in_transit(iban: str) -> str:
    return f"in_transit:{iban}"


def bank(iban: str) -> str:
    return f"bank:{iban}"


def external(category: str) -> str:
    return f"external:{category}"


# Bank movements that are no part of the scheme (bank charges, interest, the
# sponsor moving money to or from its own other accounts), booked by a person
# from the exceptions queue against ``bank:<iban>``. They are clearing accounts:
# the sponsor's own administration books them as costs, income or transfers.
EXTERNAL = {
    "bank_charges": "Bank charges (for the sponsor's own administration)",
    "interest": "Interest (for the sponsor's own administration)",
    "own_transfer": "Transfers to and from the sponsor's other accounts",
}


async def ensure_external(conn: Any, ledger_id: int, category: str) -> int:
    """The ``external:<category>`` account of a ledger (made on first use); its id."""
    code = external(category)
    return (await ensure(conn, ledger_id, [(code, EXTERNAL[category])]))[code]


# Sub-ledgers: one account per voucher. Reports (trial balance, auditfile) show
# them as one control line, ``voucher:*``; their detail is each voucher's history.
SUBLEDGERS = ("voucher:",)


def control_code(code: str) -> str:
    for prefix in SUBLEDGERS:
        if code.startswith(prefix):
            return prefix + "*"
    return code


# Debit-limited accounts: a fund cannot give out more than it was granted, a
# voucher cannot spend more than it holds.
LIMITED_PREFIXES = ("fund:", "voucher:")


def spec(ledger_id: int, code: str, name: str) -> AccountSpec:
    return AccountSpec(
        ledger_id=ledger_id,
        code=code,
        name=name,
        debits_must_not_exceed_credits=code.startswith(LIMITED_PREFIXES),
    )


async def ensure(conn: Any, ledger_id: int, items: list[tuple[str, str]]) -> dict[str, int]:
    """Make sure accounts exist; return code -> account id."""
    accounts = await ensure_accounts(conn, [spec(ledger_id, code, name) for code, name in items])
    return {a.code: a.id for a in accounts}
