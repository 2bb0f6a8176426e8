"""The SEPA benchmark runs and its files are real; wall-clock is printed, never asserted."""

from __future__ import annotations

from pathlib import Path

from sepa.bench import bench_sepa
from sepa.xsd import validate


def test_bench_small_run_splits_and_writes_valid_files(tmp_path: Path) -> None:
    result = bench_sepa(payables=300, suppliers=60, out_dir=tmp_path, max_per_file=25)
    assert (result["payables"], result["suppliers"], result["payments"], result["files"]) == (300, 60, 60, 3)
    files = sorted(tmp_path.glob("*.xml"))
    assert len(files) == 3
    assert sum(f.stat().st_size for f in files) == result["bytes"]
    for f in files:
        validate(f.read_bytes(), "pain.001.001.09")
    assert result["build_validate_s"] >= 0
