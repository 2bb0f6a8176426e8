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


_BASE = len(_VOUCHER_ALPHABET)
_DIGITS = 12
_SPACE = _BASE**_DIGITS  # about 2^59.5 codes


def new_voucher_code() -> str:
    """12 characters drawn uniformly from the alphabet (about 59 bits).

    One 60-bit draw per code, rejected when it falls outside the code space
    (so every code is equally likely), then written in base 31: a bulk issue
    of 100,000 makes 100,000 draws instead of 1.2 million ``secrets.choice`` calls.
    """
    n = secrets.randbits(60)
    while n >= _SPACE:
        n = secrets.randbits(60)
    raw = []
    for _ in range(_DIGITS):
        n, d = divmod(n, _BASE)
        raw.append(_VOUCHER_ALPHABET[d])
    return f"V-{''.join(raw[:4])}-{''.join(raw[4:8])}-{''.join(raw[8:])}"
