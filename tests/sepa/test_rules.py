"""Pure SEPA rules: EPC text, identifiers, remittance, TARGET2 calendar."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sepa.pain001 import split_payments
from sepa.rules import (
    EPC_CHARS,
    IDENTIFIER_CHARS,
    MAX_IDENTIFIER,
    MAX_NAME,
    MAX_REMITTANCE,
    build_remittance,
    creditor_reference,
    easter_sunday,
    end_to_end_id,
    epc_name,
    execution_date,
    identifier_problems,
    is_target2_business_day,
    needs_creditor_bic,
    next_target2_business_day,
    structured_ref_issuer,
    to_epc,
)
from tests.sepa.helpers import payment

# ---------------------------------------------------------------- EPC text


@pytest.mark.parametrize(
    ("raw", "epc"),
    [
        ("Café Één", "Cafe Een"),
        ("Straße", "Strasse"),
        ("Ørsted & Zonen", "Orsted + Zonen"),
        ("Ærø", "AEro"),
        ("Łódź", "Lodz"),
        ("ĳsclub  de   Vries\t\n", "ijsclub de Vries"),
        ("“quoted” ‘x’", "'quoted' 'x'"),
        ("a_b–c—d", "a-b-c-d"),
        ("info@club.nl", "info(at)club.nl"),
        ("€ 12,50", "EUR 12,50"),
        ("東京 Sports", "Sports"),
        ("emoji 🚲 bike", "emoji bike"),
        ("already clean/-?:().,'+", "already clean/-?:().,'+"),
        ("", ""),
        ("line\n", "line"),
        # numbers keep their meaning: ½ is 1/2, not 12; 3×2 is 3x2, not 32
        ("Fietsen ½ prijs", "Fietsen 1/2 prijs"),
        ("Sportclub ¾ Baan", "Sportclub 3/4 Baan"),
        ("Actie 3×2", "Actie 3x2"),
    ],
)
def test_to_epc_examples(raw: str, epc: str) -> None:
    assert to_epc(raw) == epc


@given(st.text(max_size=300))
def test_to_epc_is_within_charset_collapsed_and_idempotent(raw: str) -> None:
    out = to_epc(raw)
    assert set(out) <= EPC_CHARS
    assert "  " not in out and out == out.strip()
    assert to_epc(out) == out


@given(st.text(max_size=200))
def test_epc_name_is_at_most_70(raw: str) -> None:
    name = epc_name(raw)
    assert len(name) <= MAX_NAME and set(name) <= EPC_CHARS


# ---------------------------------------------------------------- identifiers


@pytest.mark.parametrize(
    ("ident", "codes"),
    [
        ("P2026112201-000042", []),
        ("A/B-C?D:(E).F,G'H+I", []),
        ("", ["identifier_empty"]),
        ("x" * 36, ["identifier_too_long"]),
        ("x" * 35, []),
        ("has space", ["identifier_bad_character"]),
        ("café", ["identifier_bad_character"]),
        ("a&b", ["identifier_bad_character"]),
        ("/lead", ["identifier_edge_slash"]),
        ("trail/", ["identifier_edge_slash"]),
        ("a//b", ["identifier_double_slash"]),
        ("trailing-newline\n", ["identifier_bad_character"]),
    ],
)
def test_identifier_rules(ident: str, codes: list[str]) -> None:
    assert identifier_problems(ident) == codes


@given(st.text(alphabet=sorted(IDENTIFIER_CHARS - {"/"}), min_size=1, max_size=MAX_IDENTIFIER))
def test_identifiers_from_the_charset_without_slashes_are_fine(ident: str) -> None:
    assert identifier_problems(ident) == []


@given(st.text(min_size=1, max_size=60))
def test_identifier_problems_agree_with_the_rules(ident: str) -> None:
    ok = (
        len(ident) <= MAX_IDENTIFIER
        and set(ident) <= IDENTIFIER_CHARS
        and not ident.startswith("/")
        and not ident.endswith("/")
        and "//" not in ident
    )
    assert (identifier_problems(ident) == []) == ok


def test_end_to_end_id_from_run_and_sequence() -> None:
    assert end_to_end_id("P2026112201", 42) == "P2026112201-000042"
    assert end_to_end_id("P2026112201", 1_234_567) == "P2026112201-1234567"
    with pytest.raises(ValueError, match="non-negative"):
        end_to_end_id("P2026112201", -1)
    with pytest.raises(ValueError, match="identifier_too_long"):
        end_to_end_id("P" * 30, 1)
    with pytest.raises(ValueError, match="identifier_bad_character"):
        end_to_end_id("P 1", 1)


# ---------------------------------------------------------------- structured references


def test_structured_references() -> None:
    assert structured_ref_issuer("RF18539007547034") == "ISO"  # the ISO 11649 example
    assert structured_ref_issuer("RF19539007547034") is None  # wrong check digits
    assert structured_ref_issuer("1234567890123456") == "CUR"  # 16-digit betalingskenmerk
    assert structured_ref_issuer("1234567") == "CUR"
    assert structured_ref_issuer("12345678") is None
    assert structured_ref_issuer("ABC") is None
    assert structured_ref_issuer("1234567\n") is None
    assert structured_ref_issuer("١٢٣٤٥٦٧") is None  # Arabic-Indic digits are not digits here
    assert creditor_reference("539007547034") == "RF18539007547034"


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=21))
def test_creditor_reference_always_validates(body: str) -> None:
    assert structured_ref_issuer(creditor_reference(body)) == "ISO"


# ---------------------------------------------------------------- remittance


def test_remittance_keeps_all_refs_that_fit() -> None:
    r = build_remittance("Uitbetaling P2026112201", ["RD-1", "RD-2"])
    assert (r.text, r.included, r.omitted) == ("Uitbetaling P2026112201 RD-1 RD-2", 2, 0)


def test_remittance_cuts_before_a_ref_that_would_not_fit() -> None:
    refs = [f"RD-2026-{n:07d}" for n in range(20)]  # 15 characters each
    r = build_remittance("Uitbetaling P2026112201", refs)
    assert len(r.text) <= MAX_REMITTANCE
    assert r.included == 7 and r.omitted == 13  # 23 + 7 * 16 = 135; an 8th would make 151
    assert r.text.endswith("RD-2026-0000006")


def test_remittance_reduces_refs_to_epc_and_drops_empty_ones() -> None:
    r = build_remittance("Betaling", ["Café", "東京", "X"])
    assert (r.text, r.included, r.omitted) == ("Betaling Cafe X", 2, 0)


def test_platform_ref_must_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        build_remittance("x" * 141, [])
    with pytest.raises(ValueError, match="exceeds the SEPA maximum"):
        build_remittance("x", [], limit=141)


_ref = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=40)


@given(st.text(alphabet="ABCdef0123 -", min_size=1, max_size=40).filter(lambda s: to_epc(s) != ""), st.lists(_ref))
def test_remittance_never_too_long_never_splits_a_ref(platform: str, refs: list[str]) -> None:
    r = build_remittance(platform, refs)
    assert len(r.text) <= MAX_REMITTANCE
    assert r.included + r.omitted == len(refs)
    head = to_epc(platform)
    assert r.text.startswith(head)
    # What follows the platform ref is exactly the first `included` refs, whole.
    assert r.text[len(head) :].split() == refs[: r.included]
    if r.omitted:
        assert len(r.text) + 1 + len(refs[r.included]) > MAX_REMITTANCE


# ---------------------------------------------------------------- TARGET2 calendar


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2000, date(2000, 4, 23)),
        (2008, date(2008, 3, 23)),
        (2019, date(2019, 4, 21)),
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),
        (2285, date(2285, 3, 22)),  # earliest possible
        (1943, date(1943, 4, 25)),  # latest possible
    ],
)
def test_easter(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


@pytest.mark.parametrize(
    "closed",
    [
        date(2026, 1, 1),
        date(2026, 4, 3),  # Good Friday
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 1),
        date(2026, 12, 25),
        date(2026, 12, 26),
        date(2026, 11, 21),  # Saturday
        date(2026, 11, 22),  # Sunday
    ],
)
def test_target2_closed_days(closed: date) -> None:
    assert not is_target2_business_day(closed)


@pytest.mark.parametrize("open_day", [date(2026, 4, 2), date(2026, 4, 7), date(2026, 5, 5), date(2026, 12, 24)])
def test_target2_open_days_including_national_holidays(open_day: date) -> None:
    # Liberation Day (5 May) and Christmas Eve are bank-open in TARGET2.
    assert is_target2_business_day(open_day)


@pytest.mark.parametrize(
    ("today", "regular"),
    [
        (date(2026, 4, 2), date(2026, 4, 7)),  # Thursday before Easter: Fri..Mon closed
        (date(2026, 11, 20), date(2026, 11, 23)),  # Friday -> Monday
        (date(2026, 11, 22), date(2026, 11, 23)),  # Sunday -> Monday
        (date(2026, 11, 23), date(2026, 11, 24)),  # strictly after today
        (date(2026, 12, 24), date(2026, 12, 28)),
        (date(2026, 12, 31), date(2027, 1, 4)),
        (date(2026, 4, 30), date(2026, 5, 4)),  # 1 May is a Friday
    ],
)
def test_execution_date(today: date, regular: date) -> None:
    assert execution_date(today, instant=False) == regular
    assert execution_date(today, instant=True) == today  # instant: any day, today


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31)))
def test_next_business_day_is_the_first_one_after(today: date) -> None:
    nxt = next_target2_business_day(today)
    assert nxt > today and is_target2_business_day(nxt)
    day = today + timedelta(days=1)
    while day < nxt:
        assert not is_target2_business_day(day)
        day += timedelta(days=1)


# ---------------------------------------------------------------- splitting


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=25))
def test_split_payments_keeps_order_and_limit(n: int, size: int) -> None:
    payments = [payment(seq=i) for i in range(n)]
    chunks = split_payments(payments, size)
    assert all(1 <= len(c) <= size for c in chunks)
    assert [p for c in chunks for p in c] == payments
    assert len(chunks) == -(-n // size)


def test_split_payments_refuses_a_nonsense_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_payments([payment()], 0)


def test_a_bic_is_needed_only_for_creditors_outside_the_eea() -> None:
    for eea in (
        "NL91ABNA0417164300",
        "DE89370400440532013000",
        "NO9386011117947",
        "LI21088100002324013AA",
        "fr14 2004",
    ):
        assert not needs_creditor_bic(eea), eea
    for outside in (
        "CH9300762011623852957",
        "GB29NWBK60161331926819",
        "MC5811222000010123456789030",
        "SM86U0322509800000000270100",
    ):
        assert needs_creditor_bic(outside), outside
