"""SEPA rules as pure helpers: character set, identifiers, remittance, calendar.

Everything here is a plain function over strings and dates, so ``settlement/``
can check a payout before it ever asks for a file, and tests can prove each
rule on its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

import msgspec

# ---------------------------------------------------------------- limits

MAX_REMITTANCE = 140  # Ustrd: Max140Text, and EPC allows one occurrence only
MAX_IDENTIFIER = 35  # MsgId, PmtInfId, InstrId, EndToEndId: Max35Text
MAX_NAME = 70  # Nm: EPC caps party names at 70 although the XSD allows 140
INSTANT_MAX_CENTS = 10_000_000  # SCT Inst scheme maximum: EUR 100,000 a payment
SCT_MAX_CENTS = 99_999_999_999  # SCT scheme maximum: EUR 999,999,999.99 a payment
DEFAULT_MAX_PAYMENTS_PER_FILE = 10_000
# Longest run of TARGET2 closing days is Good Friday..Easter Monday (4 days);
# the bound only turns a calendar bug into an error instead of a hang.
_MAX_CLOSED_RUN = 10

# ---------------------------------------------------------------- EPC character set

# EPC "basic Latin" set every SEPA bank must accept. Banks may accept more, but
# anything beyond this is where files get rejected or names arrive mangled.
EPC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")
IDENTIFIER_CHARS = EPC_CHARS - {" "}
# Always fullmatch: '$' would also accept a trailing newline.
_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9/\-?:().,'+]*")
# Already-clean text: EPC characters only, single spaces, no space at either end.
_CLEAN_EPC_RE = re.compile(r"(?:[A-Za-z0-9/\-?:().,'+]+(?: [A-Za-z0-9/\-?:().,'+]+)*)?")

# Letters that Unicode decomposition does not reduce to ASCII, and ASCII
# punctuation that has a natural EPC stand-in (after EPC best practice, e.g.
# '&' -> '+'). Everything else is decomposed (é -> e) or dropped.
_TRANSLITERATE: dict[str, str] = {
    "ß": "ss",
    "ẞ": "SS",
    "æ": "ae",
    "Æ": "AE",
    "œ": "oe",
    "Œ": "OE",
    "ø": "o",
    "Ø": "O",
    "đ": "d",
    "Đ": "D",
    "ð": "d",
    "Ð": "D",
    "þ": "th",
    "Þ": "TH",
    "ł": "l",
    "Ł": "L",
    "ı": "i",
    "ħ": "h",
    "Ħ": "H",
    "ŧ": "t",
    "Ŧ": "T",
    "ŋ": "n",
    "Ŋ": "N",
    "&": "+",
    "_": "-",
    "‐": "-",
    "‑": "-",
    "‒": "-",
    "–": "-",
    "—": "-",
    "−": "-",
    '"': "'",
    "`": "'",
    "´": "'",
    "‘": "'",
    "’": "'",
    "‚": "'",
    "“": "'",
    "”": "'",
    "„": "'",
    "«": "'",
    "»": "'",
    "[": "(",
    "]": ")",
    "{": "(",
    "}": ")",
    "<": "(",
    ">": ")",
    ";": ",",
    "!": ".",
    "\\": "/",
    "|": "/",
    "⁄": "/",  # fraction slash: NFKD makes ½ into 1⁄2, which must read 1/2, not 12
    "×": "x",
    "÷": "/",
    "€": "EUR",
    "@": "(at)",
}
_SPACES = re.compile(r" {2,}")


def _reduce_char(ch: str) -> str:
    if ch in EPC_CHARS:
        return ch
    mapped = _TRANSLITERATE.get(ch)
    if mapped is not None:
        return mapped
    if ch.isspace():
        return " "
    # NFKD splits 'é' into 'e' + combining accent, 'ﬁ' into 'fi' and '½' into
    # '1⁄2'; keeping the EPC characters of the result (and the stand-ins of
    # those with one) drops the accents.
    return "".join(c if c in EPC_CHARS else _TRANSLITERATE.get(c, "") for c in unicodedata.normalize("NFKD", ch))


def to_epc(text: str) -> str:
    """Reduce any text to the EPC basic Latin set; idempotent.

    Accents are transliterated, other characters dropped, whitespace collapsed.
    """
    if _CLEAN_EPC_RE.fullmatch(text) is not None:
        return text  # the common case: platform-made text that is already clean
    reduced = "".join(_reduce_char(c) for c in text)
    return _SPACES.sub(" ", reduced).strip()


def epc_name(name: str) -> str:
    """A party name as it goes into ``Nm``: EPC set, at most 70 characters."""
    return to_epc(name)[:MAX_NAME].rstrip()


# ---------------------------------------------------------------- IBAN-only

# The EEA (EU and Iceland, Liechtenstein, Norway) by IBAN country code. Inside it a
# SEPA credit transfer needs no BIC (Regulation (EU) 260/2012, since February 2016);
# a payment to or from a SEPA country outside it (Switzerland, the UK, Monaco, San
# Marino, Andorra, the Vatican, ...) still must name the creditor's bank by its BIC.
# Overseas parts of EEA states bank with their state's IBANs (FR, PT, ES, FI).
EEA_COUNTRIES = frozenset(
    {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
     "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK"}
)  # fmt: skip


def needs_creditor_bic(creditor_iban: str) -> bool:
    """Whether a SEPA credit transfer to this IBAN must name the creditor's BIC: when its
    country is outside the EEA. (Compact or spaced IBAN; the first two letters decide.)"""
    return creditor_iban.strip()[:2].upper() not in EEA_COUNTRIES


# ---------------------------------------------------------------- identifiers


def identifier_problems(s: str) -> list[str]:
    """Rule codes broken by a MsgId / PmtInfId / InstrId / EndToEndId; [] when fine."""
    problems: list[str] = []
    if not s:
        return ["identifier_empty"]
    if len(s) > MAX_IDENTIFIER:
        problems.append("identifier_too_long")
    if _IDENTIFIER_RE.fullmatch(s) is None:
        problems.append("identifier_bad_character")
    if s.startswith("/") or s.endswith("/"):
        problems.append("identifier_edge_slash")
    if "//" in s:
        problems.append("identifier_double_slash")
    return problems


def end_to_end_id(run_code: str, seq: int) -> str:
    """EndToEndId from the payout run and the payment's sequence: ``P2026112201-000042``.

    A bank line carrying it leads straight back to the payment.
    """
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"sequence must be a non-negative int, got {seq!r}")
    e2e = f"{run_code}-{seq:06d}"
    problems = identifier_problems(e2e)
    if problems:
        raise ValueError(f"EndToEndId {e2e!r} breaks {', '.join(problems)}")
    return e2e


# ---------------------------------------------------------------- structured references

StructuredRefIssuer = Literal["ISO", "CUR"]
_RF_RE = re.compile(r"RF([0-9]{2})([A-Z0-9]{1,21})")
# Dutch betalingskenmerk: 16 digits (check digit first) or the older 7-digit
# form. The check digit belongs to the issuing creditor; we copy, not verify.
_CUR_RE = re.compile(r"[0-9]{7}|[0-9]{16}")


def _iso7064_mod97(text: str) -> int:
    return int("".join(str(int(c, 36)) for c in text)) % 97


def structured_ref_issuer(ref: str) -> StructuredRefIssuer | None:
    """'ISO' for a valid ISO 11649 RF reference, 'CUR' for a Dutch betalingskenmerk, else None."""
    m = _RF_RE.fullmatch(ref)
    if m is not None:
        return "ISO" if _iso7064_mod97(m.group(2) + "RF" + m.group(1)) == 1 else None
    if _CUR_RE.fullmatch(ref) is not None:
        return "CUR"
    return None


def creditor_reference(body: str) -> str:
    """ISO 11649 reference for ``body`` (e.g. a fund code): 'RF' + check digits + body."""
    body = body.upper()
    if not re.fullmatch(r"[A-Z0-9]{1,21}", body):
        raise ValueError(f"RF reference body must be 1-21 letters/digits, got {body!r}")
    check = 98 - _iso7064_mod97(body + "RF00")
    return f"RF{check:02d}{body}"


# ---------------------------------------------------------------- remittance


class Remittance(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    included: int  # how many of the given refs made it into the text
    omitted: int  # how many did not fit; the supplier portal lists them all


def build_remittance(platform_ref: str, refs: Iterable[str], limit: int = MAX_REMITTANCE) -> Remittance:
    """Platform ref, then the redemption refs in order, cut before the first ref
    that would not fit: a reference is never split, and the refs shown are
    always a prefix of the list so the supplier knows which ones are missing.
    """
    if limit > MAX_REMITTANCE:
        raise ValueError(f"limit {limit} exceeds the SEPA maximum {MAX_REMITTANCE}")
    head = to_epc(platform_ref)
    if not head or len(head) > limit:
        # The platform ref is ours and short by construction: this is a bug.
        raise ValueError(f"platform ref {platform_ref!r} does not fit in {limit} characters")
    parts = [head]
    length = len(head)
    clean = [r for r in (to_epc(r) for r in refs) if r]
    included = 0
    for ref in clean:
        if length + 1 + len(ref) > limit:
            break
        parts.append(ref)
        length += 1 + len(ref)
        included += 1
    return Remittance(text=" ".join(parts), included=included, omitted=len(clean) - included)


# ---------------------------------------------------------------- TARGET2 calendar


@lru_cache(maxsize=256)
def easter_sunday(year: int) -> date:
    """Western Easter by the anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def is_target2_business_day(d: date) -> bool:
    if d.weekday() >= 5:
        return False
    if (d.month, d.day) in ((1, 1), (5, 1), (12, 25), (12, 26)):
        return False
    easter = easter_sunday(d.year)
    return d not in (easter - timedelta(days=2), easter + timedelta(days=1))


def next_target2_business_day(d: date) -> date:
    """The first TARGET2 business day strictly after ``d``."""
    day = d
    for _ in range(_MAX_CLOSED_RUN):
        day += timedelta(days=1)
        if is_target2_business_day(day):
            return day
    raise AssertionError(f"no TARGET2 business day within {_MAX_CLOSED_RUN} days after {d}")


def execution_date(today: date, instant: bool) -> date:
    """Requested execution date for a file made ``today``.

    Instant payments settle any day, so today. A regular SCT file goes to the
    next business day: sent today, it cannot be executed earlier anyway, and
    asking for a closed day makes some banks reject the block.
    """
    return today if instant else next_target2_business_day(today)
