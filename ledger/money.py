"""Money: integer minor units (euro cents) plus an ISO 4217 code, everywhere.

No float ever touches an amount. Decimal text appears only at the edges that
require it (pain.001 ``InstdAmt``, CSV exports, bank statements), and these
two functions are the only way across that edge.
"""

from __future__ import annotations

import re

import msgspec

EUR = "EUR"

# Largest amount we accept anywhere: 10^15 cents is far beyond any sponsor's
# budget and far inside bigint; an account total that would still not fit
# (about 9,000 maximal amounts) is refused by the engine (overflows_debits,
# overflows_credits), never left to fail in the database.
MAX_AMOUNT = 10**15

_DECIMAL = re.compile(r"^(-)?(\d{1,15})(?:[.,](\d{1,2}))?$")


class Money(msgspec.Struct, frozen=True, kw_only=True):
    amount: int
    currency: str = EUR


def format_decimal(cents: int) -> str:
    """Cents as decimal text with two places: 1250 -> '12.50', -5 -> '-0.05'."""
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise TypeError("amounts are int cents")
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def parse_decimal(text: str) -> int:
    """Decimal text to cents without floats: '12.5' -> 1250, '12,50' -> 1250.

    More than two fraction digits is an error, never a rounding.
    """
    m = _DECIMAL.match(text.strip())
    if m is None:
        raise ValueError(f"not a decimal amount with at most two places: {text!r}")
    sign, whole, frac = m.groups()
    cents = int(whole) * 100 + int((frac or "").ljust(2, "0"))
    return -cents if sign else cents
