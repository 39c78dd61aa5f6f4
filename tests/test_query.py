"""Suspects sampled more densely than the library: rows pooled back to the library's step."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import COPY_REFERENCE_S, Corpus, run_vcopy

from vcopy.errors import VcopyError
from vcopy.query import pooled_rows, pooled_times, row_groups, rows_per_library_frame


def test_rows_are_pooled_per_library_step() -> None:
    contrast = np.array([[0.1, 0.5], [0.3, 0.2], [0.0, 0.9], [0.4, 0.1], [0.7, 0.0]], np.float32)
    times = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    groups = row_groups(len(times), 2)
    assert groups.tolist() == [0, 2, 4]
    np.testing.assert_allclose(pooled_rows(contrast, groups), [[0.3, 0.5], [0.4, 0.9], [0.7, 0.0]])
    assert pooled_times(times, groups).tolist() == [0.25, 1.25, 2.0]
    one = row_groups(len(times), 1)
    assert pooled_rows(contrast, one) is contrast and pooled_times(times, one) is times


def test_query_rate_is_a_whole_multiple_of_the_library_rate() -> None:
    assert rows_per_library_frame(None, 1.0) == 2  # the default: twice the library's rate
    assert rows_per_library_frame(2.0, 1.0) == 2 and rows_per_library_frame(4.0, 2.0) == 2
    for bad in (1.5, 0.5, 100.0):
        with pytest.raises(VcopyError, match="whole multiple"):
            rows_per_library_frame(bad, 1.0)


@pytest.mark.slow
def test_dense_suspects_find_the_copy_where_it_is(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    report = tmp_path / "dense.json"
    proc = run_vcopy("query", corpus.copy, "--library", library, "--query-fps", "2", "--json", report)
    assert proc.returncode == 0, proc.stderr
    done = json.loads(report.read_text())
    assert done["parameters"]["query_fps"] == 2.0
    [match] = done["queries"][0]["matches"]
    assert Path(match["reference"]["path"]) == corpus.copied_reference
    segment = match["segments"][0]
    start_s, end_s = COPY_REFERENCE_S
    assert abs(segment["reference_start"] - start_s) <= 1.5 and abs(segment["reference_end"] - end_s) <= 1.5
    assert abs(segment["query_start"] - 6.0) <= 1.5  # the copy follows 6 s of unrelated video
    proc = run_vcopy("query", corpus.copy, "--library", library, "--query-fps", "1.5")
    assert proc.returncode == 2 and "--query-fps" in proc.stderr and "whole multiple" in proc.stderr
