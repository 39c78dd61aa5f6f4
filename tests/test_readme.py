"""Every Python example in README.md and in docs/usage.md's Python API runs as written, saved as a
script (no main guard needed around decoding), in a folder holding what the examples name."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Corpus, run_vcopy

from vcopy.synth.captioned import make_fine_grained_set

ROOT = Path(__file__).resolve().parent.parent


def _python_examples() -> list[str]:
    usage = (ROOT / "docs" / "usage.md").read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    return [
        code
        for text in ((ROOT / "README.md").read_text(), usage)
        for code in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    ]


def test_the_readme_and_the_usage_guide_have_python_examples() -> None:
    assert len(_python_examples()) == 7  # one in README.md, six in docs/usage.md


@pytest.fixture(scope="module")
def workdir(
    corpus: Corpus, library: Path, small_bench: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A folder with what the examples name: LIB, suspect.mp4, bench, report.json, captions."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(library, folder / "LIB", ignore=shutil.ignore_patterns("write.lock"))
    shutil.copy(corpus.copy, folder / "suspect.mp4")
    (folder / "bench").symlink_to(small_bench.parent)  # generate() reuses a benchmark it made
    proc = run_vcopy(
        "query", folder / "suspect.mp4", "--library", folder / "LIB", "--json", folder / "report.json"
    )
    assert proc.returncode == 0, proc.stderr
    make_fine_grained_set(folder / "videos", groups=3, duration_s=4.0)
    shutil.copy(folder / "videos" / "captions.jsonl", folder / "captions.jsonl")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("number", range(7))
def test_a_readme_example_runs_as_a_saved_script(number: int, workdir: Path) -> None:
    script = workdir / f"example{number}.py"
    script.write_text(_python_examples()[number])
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "every example prints what it found"
    if number in (0, 1, 6):
        assert "r1.mp4" in proc.stdout  # the copy is found (6: on a local Ray cluster)
    if number == 5:
        assert proc.stdout.startswith("12 indexed; 12 videos")
