"""References people see: fund top-up (ISO 11649 RF) and voucher codes."""

from __future__ import annotations

import secrets

# Unambiguous characters for codes read aloud at a counter (no 0/O, 1/I/L).
_VOUCHER_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def rf_reference(body: str) -> str:
    """ISO 11649 creditor reference: RF + two check digits + body (mod 97)."""
    body = body.upper()
    digits = "".join(str(int(c, 36)) for c in body + "RF00")
    check = 98 - int(digits) % 97
    return f"RF{check:02d}{body}"


def fund_top_up_reference(sponsor_id: int, fund_code: str) -> str:
    return rf_reference(f"S{sponsor_id}F{fund_code}")


def new_voucher_code() -> str:
    raw = "".join(secrets.choice(_VOUCHER_ALPHABET) for _ in range(12))
    return f"V-{raw[:4]}-{raw[4:8]}-{raw[8:]}"
