"""`make bench` regenerates benchmarks/RESULTS.md: what was measured by hand survives."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report import KEEP, write_report

ROOT = Path(__file__).resolve().parent.parent


def test_hand_written_sections_and_tails_survive_a_regeneration(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## Sink\n\nold numbers\n\n" + KEEP + "\n\n"
                    "a hand-measured paragraph\n\n## Failures on a cluster\n\nnode kill: 5 s\n")
    results = {"sink": {"rows": 10, "rows_per_s": 1, "bytes_per_row": 2, "resume_scan_s": 0.1}}
    write_report(results, path)
    first = path.read_text()
    assert "old numbers" not in first  # generated text is regenerated ...
    assert "a hand-measured paragraph" in first  # ... the KEEP tail is not
    assert "## Failures on a cluster\n\nnode kill: 5 s" in first  # nor an unknown section
    assert first.index("a hand-measured paragraph") < first.index("## Failures on a cluster")
    write_report(results, path)
    assert path.read_text() == first  # regenerating again changes nothing


def test_the_committed_results_regenerate_without_losing_a_line(tmp_path):
    committed = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    path = tmp_path / "RESULTS.md"
    path.write_text(committed)
    write_report(json.loads((ROOT / "benchmarks" / "results.json").read_text()), path)
    assert path.read_text() == committed
