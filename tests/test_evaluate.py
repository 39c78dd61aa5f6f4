"""`vcopy eval`: every number checked against answers worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_vcopy
from vcopy.evaluate import evaluate, micro_average_precision, pair_precision_recall, union_length


def test_union_length() -> None:
    assert union_length([(0, 2), (1, 3), (5, 6)]) == pytest.approx(4.0)
    assert union_length([(0, 10), (2, 3)]) == pytest.approx(10.0)
    assert union_length([]) == 0.0


def test_pair_partial_overlap() -> None:
    # query axis: 5 of 10 s shared; reference axis: 5 of 10 s shared -> 0.5 x 0.5 both ways
    p, r = pair_precision_recall([(15, 25, 35, 45)], [(10, 20, 30, 40)])
    assert p == pytest.approx(0.25) and r == pytest.approx(0.25)


def test_pair_two_predictions_cover_one_truth() -> None:
    p, r = pair_precision_recall([(10, 16, 30, 36), (14, 20, 34, 40)], [(10, 20, 30, 40)])
    assert p == pytest.approx(1.0) and r == pytest.approx(1.0)


def test_pair_overlap_on_one_axis_only_counts_nothing() -> None:
    p, r = pair_precision_recall([(10, 20, 50, 60)], [(10, 20, 30, 40)])
    assert p == 0.0 and r == 0.0


def test_pair_without_truth_or_prediction() -> None:
    assert pair_precision_recall([(0, 1, 0, 1)], []) == (0.0, None)
    assert pair_precision_recall([], [(0, 1, 0, 1)]) == (None, 0.0)


def test_micro_average_precision() -> None:
    assert micro_average_precision([True, False, True, False], 2) == pytest.approx((1 + 2 / 3) / 2)
    # a true pair never predicted lowers AP through the normaliser
    assert micro_average_precision([True], 2) == pytest.approx(0.5)


def _write_case(tmp_path: Path) -> tuple[Path, Path]:
    """Truth: q1 copies rA, q2 copies rB, q3 copies nothing. Predictions (score): q1-rA (0.9, exact),
    q3-rC (0.8), q2-rB (0.5, half the reference axis), q2-rD (0.3)."""
    truth = {
        "schema": "vcopy.groundtruth/1",
        "references": [{"path": f"refs/{n}.mp4", "sha256": f"sha-{n}", "split": "test"} for n in "ABCD"],
        "queries": [
            {
                "path": "q1.mp4",
                "sha256": "sha-q1",
                "split": "test",
                "transforms": ["blur:1"],
                "copies": [_copy("refs/A.mp4", 0, 10, 20, 30, 1.0)],
            },
            {
                "path": "q2.mp4",
                "sha256": "sha-q2",
                "split": "test",
                "transforms": ["hflip:0", "blur:2"],
                "copies": [_copy("refs/B.mp4", 0, 10, 5, 15, 2.0)],
            },
            {"path": "q3.mp4", "sha256": "sha-q3", "split": "test", "transforms": ["hflip:1"], "copies": []},
            {"path": "q4.mp4", "sha256": "sha-q4", "split": "train", "transforms": [], "copies": []},
        ],
    }
    report = {
        "schema": "vcopy.report/1",
        "queries": [
            {"path": "/x/q1.mp4", "sha256": "sha-q1", "matches": [_match("A", 0.9, (0, 10, 20, 30))]},
            {
                "path": "/x/q2.mp4",
                "sha256": "sha-q2",
                "matches": [_match("B", 0.5, (0, 10, 0, 10)), _match("D", 0.3, (1, 2, 1, 2))],
            },
            {"path": "/x/q3.mp4", "sha256": "sha-q3", "matches": [_match("C", 0.8, (0, 5, 0, 5))]},
            {"path": "/x/q4.mp4", "sha256": "sha-q4", "matches": [_match("A", 0.99, (0, 5, 0, 5))]},
        ],
    }
    gt_path, report_path = tmp_path / "gt.json", tmp_path / "report.json"
    gt_path.write_text(json.dumps(truth))
    report_path.write_text(json.dumps(report))
    return gt_path, report_path


def _copy(ref: str, q0: float, q1: float, r0: float, r1: float, speed: float) -> dict:
    return {
        "reference": ref,
        "query_start": q0,
        "query_end": q1,
        "reference_start": r0,
        "reference_end": r1,
        "speed": speed,
    }


def _match(ref: str, score: float, box: tuple[float, float, float, float]) -> dict:
    q0, q1, r0, r1 = box
    segment = {"query_start": q0, "query_end": q1, "reference_start": r0, "reference_end": r1, "score": score}
    return {
        "reference": {"path": f"/lib/{ref}.mp4", "sha256": f"sha-{ref}"},
        "score": score,
        "segments": [segment],
    }


def test_evaluate_by_hand(tmp_path: Path) -> None:
    gt, report = _write_case(tmp_path)
    result = evaluate(gt, report, split="test")  # q4 (train) and its prediction are left out
    s = result.overall
    assert (s.queries, s.true_pairs, s.predicted_pairs) == (3, 2, 4)
    assert s.video_precision == pytest.approx(0.5)
    assert s.video_recall == pytest.approx(1.0)
    assert s.video_f1 == pytest.approx(2 / 3)
    assert s.video_micro_ap == pytest.approx((1 + 2 / 3) / 2)
    # pair precisions: q1-A 1, q3-C 0, q2-B 0.5, q2-D 0; recalls: q1-A 1, q2-B 0.5
    assert s.segment_precision == pytest.approx(0.375)
    assert s.segment_recall == pytest.approx(0.75)
    assert s.segment_f1 == pytest.approx(0.5)
    # hflip: q2 and q3 -> video P 1/3, R 1/1; blur: q1 and q2 -> P 2/3
    assert result.by_transform["hflip"].video_precision == pytest.approx(1 / 3)
    assert result.by_transform["hflip"].video_recall == pytest.approx(1.0)
    assert result.by_transform["blur"].video_precision == pytest.approx(2 / 3)
    assert result.by_speed["2x"].segment_recall == pytest.approx(0.5)
    assert result.by_speed["no copy"].predicted_pairs == 1
    assert result.missing_queries == []


def test_eval_cli_json_and_errors(tmp_path: Path) -> None:
    gt, report = _write_case(tmp_path)
    proc = run_vcopy("eval", "--gt", gt, report, "--split", "test", "--json", "-", check_json=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["overall"]["video_f1"] == pytest.approx(2 / 3)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = run_vcopy("eval", "--gt", gt, bad)
    assert proc.returncode != 0 and "bad.json" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_pairs_below_the_threshold_rank_but_do_not_match(tmp_path: Path) -> None:
    gt, report_path = _write_case(tmp_path)
    report = json.loads(report_path.read_text())
    q1 = report["queries"][0]
    q1["below_threshold"], q1["matches"] = q1["matches"], []  # the true q1-A pair, scored 0.9, not matched
    report_path.write_text(json.dumps(report))
    s = evaluate(gt, report_path, split="test").overall
    assert (s.predicted_pairs, s.video_recall) == (3, 0.5)  # no longer a match: recall drops
    assert s.video_micro_ap == pytest.approx((1 + 2 / 3) / 2)  # still ranked first: AP is unchanged


def test_recall_at_a_fixed_precision() -> None:
    from vcopy.evaluate import recall_at_precision

    ranked = [True, True, False, True, False, False, True]
    assert recall_at_precision(ranked, 5, 0.95) == pytest.approx(2 / 5)  # the first two only
    assert recall_at_precision(ranked, 5, 0.75) == pytest.approx(3 / 5)  # 3 of the first 4
    assert recall_at_precision([False, True], 1, 0.95) == 0.0
