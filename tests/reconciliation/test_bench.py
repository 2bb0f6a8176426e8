"""The reconciliation benchmarks run and count right; wall-clock is printed, never asserted."""

from __future__ import annotations

from reconciliation.bench import BATCH_EVERY, bench_match, bench_parse


def test_bench_parse_small() -> None:
    result = bench_parse(entries=3 * BATCH_EVERY, seed=7)
    assert set(result) == {"entries", "bytes", "parse_s", "lxml_iterparse_s", "ratio"}
    assert result["entries"] == 3 * BATCH_EVERY
    assert result["bytes"] > 0 and result["parse_s"] > 0 and result["lxml_iterparse_s"] > 0


def test_bench_match_small() -> None:
    result = bench_match(entries=3 * BATCH_EVERY, seed=7)
    assert set(result) == {"entries", "expected_payments", "match_s", "matched", "unmatched"}
    assert (result["entries"], result["matched"], result["unmatched"]) == (3 * BATCH_EVERY, 3 * BATCH_EVERY, 0)
    # Three batch entries of 2..12 payments each, the rest one payment per entry.
    assert 3 * BATCH_EVERY + 3 <= result["expected_payments"] <= 3 * BATCH_EVERY + 3 * 11
