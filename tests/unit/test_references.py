"""Voucher codes and RF references."""

from __future__ import annotations

import re
from collections import Counter

from settlement.references import _VOUCHER_ALPHABET, new_voucher_code, rf_reference


def test_voucher_codes_have_the_format_and_use_every_character_evenly() -> None:
    codes = [new_voucher_code() for _ in range(31 * 400)]
    pattern = re.compile(rf"V-[{_VOUCHER_ALPHABET}]{{4}}-[{_VOUCHER_ALPHABET}]{{4}}-[{_VOUCHER_ALPHABET}]{{4}}")
    assert all(pattern.fullmatch(c) for c in codes)
    assert len(set(codes)) == len(codes)
    counts = Counter(ch for c in codes for ch in c[2:].replace("-", ""))
    expected = len(codes) * 12 / len(_VOUCHER_ALPHABET)  # 4,800 per character
    assert set(counts) == set(_VOUCHER_ALPHABET)
    # 8% is 5.5 standard deviations: a fair draw never leaves it, a 15% skew does
    assert all(abs(n - expected) < 0.08 * expected for n in counts.values()), counts


def test_rf_reference_check_digits() -> None:
    assert rf_reference("539007547034") == "RF18539007547034"  # ISO 11649's own example
