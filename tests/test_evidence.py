"""Evidence pages, opened in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import Corpus, run_vcopy
from PIL import Image

from vcopy.evidence import AXIS_MARGIN_PX, FRAMES_PER_SEGMENT, aligned_times, map_image

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium (.ci/run installs Debian's package)")
        pytest.skip("no chromium here (apt-get install chromium)")
    return found


def _browse(page: Path, profile: Path, *args: str) -> str:
    proc = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_aligned_times_follow_the_segment() -> None:
    segment = {"query_start": 10.0, "query_end": 20.0, "reference_start": 100.0, "reference_end": 120.0}
    pairs = aligned_times(segment, 4)
    assert [q for q, _ in pairs] == [12.0, 14.0, 16.0, 18.0]
    assert [r for _, r in pairs] == [104.0, 108.0, 112.0, 116.0]  # a copy at half speed


def test_the_map_image_marks_seconds_on_both_axes() -> None:
    query_s, reference_s = np.arange(30, dtype=np.float64), np.arange(100, 160, dtype=np.float64)
    contrast = np.full((30, 60), -0.1, dtype=np.float32)
    contrast[np.arange(10, 20), np.arange(5, 15)] = 0.7
    segment = {"query_start": 10.0, "query_end": 20.0, "reference_start": 105.0, "reference_end": 115.0}
    image = np.asarray(map_image(contrast, query_s, reference_s, [segment]).convert("L"))
    left, top = AXIS_MARGIN_PX
    scale = 720 // 60
    assert image.shape[0] >= 30 * scale + top and image.shape[1] >= 60 * scale + left
    assert (image[:top, left:] < 128).any() and (image[top:, :left] < 128).any()  # labels and ticks
    red = np.asarray(map_image(contrast, query_s, reference_s, [segment]))[..., 0]
    assert red[top + 10 * scale, left + 5 * scale] == 255  # the segment's box starts at its frames


@pytest.mark.slow
def test_evidence_pages_show_the_report_in_a_browser(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    report_path, pages = tmp_path / "report.json", tmp_path / "evidence"
    proc = run_vcopy("query", corpus.copy, "--library", library, "--json", report_path, "--evidence", pages)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    [match] = report["queries"][0]["matches"][:1]
    page = pages / "match-001.html"
    assert (pages / "index.html").is_file() and page.is_file()
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # opens offline

    dom = _browse(page, tmp_path / "profile", "--dump-dom")
    images = 2 * FRAMES_PER_SEGMENT * len(match["segments"]) + 1  # frame pairs and the map
    assert f'data-images-loaded="{images}/{images}"' in dom
    text = re.sub(r"<[^>]+>", " ", dom)
    for key in ("sha256",):
        assert report["queries"][0][key] in text and match["reference"][key] in text
    for segment in match["segments"]:
        assert f"{segment['query_start']:.3f}–{segment['query_end']:.3f}" in text
        assert segment["reference_start_timecode"] in text
    assert "same bytes as in the report" in text and report["vcopy_version"] in text
    assert all(m["sha256"] in text for m in report["models"])

    shot = tmp_path / "page.png"
    _browse(page, tmp_path / "profile", "--window-size=1200,1600", f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1600, 1200) and pixels.std() > 20  # a page with pictures, not a blank one

    again = tmp_path / "again"
    proc = run_vcopy("evidence", report_path, "--out", again)
    assert proc.returncode == 0 and "evidence page" in proc.stdout, proc.stderr
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in pages.iterdir())


def test_evidence_of_a_file_that_is_not_a_report_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "report.json"
    bogus.write_text('{"schema": "something else"}')
    proc = run_vcopy("evidence", bogus, "--out", tmp_path / "out")
    assert proc.returncode == 5 and "not a vcopy report" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    nowhere = Path("/proc/no-such-folder")  # cannot be made, even by root
    proc = run_vcopy("evidence", bogus, "--out", nowhere)
    assert proc.returncode == 2 and "cannot be made" in proc.stderr
