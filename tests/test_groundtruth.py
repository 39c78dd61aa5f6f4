"""The one ground-truth reader: VSC22's CSV and VCSL's annotations scored by hand, errors, and the
VSC22 submission `vcopy query --format vsc` writes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import run_vcopy
from tests.test_evaluate import _match
from vcopy.errors import VcopyError
from vcopy.evaluate import evaluate
from vcopy.groundtruth import read_ground_truth
from vcopy.report import VSC_SUBMISSION_COLUMNS, report_vsc_csv

VSC = "query_id,ref_id,query_start,query_end,ref_start,ref_end\nq1,A,0,10,20,30\nq2,B,0,10,5.0,15\n"
VCSL = {"q1-A": [[0, 20, 10, 30]], "q2-B": [[0, 5, 10, 15]]}  # [query start, ref start, query end, ref end]


def _report(tmp_path: Path) -> Path:
    """q1 and q2 copy A and B (the files above); q3 and q4 are named by neither file."""
    report = {
        "schema": "vcopy.report/1",
        "queries": [
            {"path": "/x/q1.mp4", "sha256": "sha-q1", "matches": [_match("A", 0.9, (0, 10, 20, 30))]},
            {
                "path": "/x/q2.mp4",
                "sha256": "sha-q2",
                "matches": [_match("B", 0.5, (0, 10, 0, 10))],
                "below_threshold": [_match("D", 0.3, (1, 2, 1, 2))],
            },
            {"path": "/x/q3.mp4", "sha256": "sha-q3", "matches": [_match("C", 0.8, (0, 5, 0, 5))]},
            {"path": "/x/q4.mp4", "sha256": "sha-q4", "matches": [_match("A", 0.99, (0, 5, 0, 5))]},
        ],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


@pytest.mark.parametrize("fmt", ["VSC22", "VCSL"])
def test_vsc22_and_vcsl_ground_truth_scored_by_hand(tmp_path: Path, fmt: str) -> None:
    gt = tmp_path / ("gt.csv" if fmt == "VSC22" else "label_file.json")
    gt.write_text(VSC if fmt == "VSC22" else json.dumps(VCSL))
    truth = read_ground_truth(gt)
    assert (truth.format, truth.key, sorted(truth.queries)) == (fmt, "stem", ["q1", "q2"])
    assert truth.queries["q2"].boxes == {"B": [(0.0, 10.0, 5.0, 15.0)]}
    s = evaluate(gt, _report(tmp_path)).overall
    # q3 and q4 are not named: queries without copies, so their matches are false
    assert (s.queries, s.true_pairs, s.predicted_pairs) == (4, 2, 4)
    assert (s.video_precision, s.video_recall) == (pytest.approx(0.5), pytest.approx(1.0))
    # ranked: q4-A 0.99 (false), q1-A 0.9 (true, precision 1/2), q3-C 0.8, q2-B 0.5 (true, 2/4), q2-D 0.3
    assert s.video_micro_ap == pytest.approx(0.5)
    # segment precision of the matched pairs: q1-A 1, q2-B 0.5 (half the reference axis), q3-C 0,
    # q4-A 0 -> 0.375; recall: q1-A 1, q2-B 0.5 -> 0.75
    assert (s.segment_precision, s.segment_recall) == (pytest.approx(0.375), pytest.approx(0.75))
    assert s.segment_f1 == pytest.approx(0.5)


def test_a_bad_ground_truth_is_one_line_naming_the_file(tmp_path: Path) -> None:
    cases = {
        "header.csv": "query,reference\nq1,A\n",
        "negative.csv": VSC + "q3,C,-1,4,0,5\n",
        "backwards.csv": VSC + "q3,C,9,4,0,5\n",
        "short.csv": VSC + "q3,C,1,4\n",
        "key.json": json.dumps({"q1A": [[0, 0, 1, 1]]}),
        "boxes.json": json.dumps({"q1-A": [[0, 0, 1]]}),
        "list.json": "[1, 2]",
        "empty.csv": "query_id,ref_id,query_start,query_end,ref_start,ref_end\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(VcopyError) as info:
            read_ground_truth(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name)) and "\n" not in str(info.value), name
    (tmp_path / "gt.csv").write_text(VSC)
    with pytest.raises(VcopyError, match="has no splits"):
        read_ground_truth(tmp_path / "gt.csv", split="test")
    with pytest.raises(VcopyError, match="cannot read"):
        read_ground_truth(tmp_path / "missing.csv")


def test_the_vsc22_submission_lists_every_scored_segment(tmp_path: Path) -> None:
    report = json.loads(_report(tmp_path).read_text())
    rows = list(csv.reader(io.StringIO(report_vsc_csv(report))))
    assert tuple(rows[0]) == VSC_SUBMISSION_COLUMNS
    assert rows[1:] == [
        ["q1", "A", "0", "10", "20", "30", "0.9"],
        ["q2", "B", "0", "10", "0", "10", "0.5"],
        ["q2", "D", "1", "2", "1", "2", "0.3"],  # below the threshold: the challenge ranks it too
        ["q3", "C", "0", "5", "0", "5", "0.8"],
        ["q4", "A", "0", "5", "0", "5", "0.99"],
    ]
    submission = tmp_path / "submission.csv"
    submission.write_text(report_vsc_csv(report))
    assert sorted(read_ground_truth(submission).queries) == ["q1", "q2", "q3", "q4"]  # it parses as VSC22


def test_eval_cli_takes_a_vsc22_csv(tmp_path: Path) -> None:
    gt = tmp_path / "gt.csv"
    gt.write_text(VSC)
    proc = run_vcopy("eval", "--gt", gt, _report(tmp_path), "--json", "-", check_json=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["overall"]["video_micro_ap"] == pytest.approx(0.5)
    refused = run_vcopy("eval", "--gt", gt, _report(tmp_path), "--split", "test")
    assert refused.returncode != 0 and "gt.csv: a VSC22 file has no splits" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
