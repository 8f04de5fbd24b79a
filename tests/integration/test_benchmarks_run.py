"""`python -m benchmarks` keeps running: the sections cheap at their quick sizes run through (the in-process
sync driver, the diff's scale, the local end-to-end sync), and every section at least imports. The other
sections take 10 s to minutes even --quick (real minutes of a rate budget, fresh interpreters, cold starts),
so they are left to `make bench`."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import __main__ as bench  # imports every section

CHEAP = "134"


def test_the_cheap_sections_run_through_and_write_their_tables(tmp_path: Path) -> None:
    output = tmp_path / "results.md"
    assert bench.main(["--quick", "--only", CHEAP, "--output", str(output)]) == 0
    text = output.read_text()
    for key in CHEAP:
        assert f"### {key}. " in text
    assert "calls / physical minimum = 1.00 | worst scenario 1.00 | met" in text


def test_only_names_the_tenth_section_and_refuses_what_is_none() -> None:
    assert bench._sections("13") == ["1", "3"]
    assert bench._sections("10") == ["10"]
    with pytest.raises(Exception, match="sections are 1 to 10"):
        bench._sections("0")
