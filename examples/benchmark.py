"""The benchmark: generate (or reuse) the copy dataset, index it, query with every localizer on the
very same similarity maps, score, and print one markdown table.

    python examples/benchmark.py WORK_DIR [--small | --catalogue] [--descriptor NAME]
        [--localizers spd,tn] [--calibrate] [--query-fps F] [--keyframes uniform|coverage|ske]

WORK_DIR/bench holds the dataset (reused when present), WORK_DIR/library a fresh library of the
test and long-form references (their key frames with ``--keyframes``), WORK_DIR/reports one
report per split and localizer.

Matches are decided by each localizer's shipped threshold; with ``--calibrate`` each localizer's
threshold is first fitted on the train split (a library of its references, its queries: the
threshold with the best video F1) and the test and long splits are scored at it. µAP and recall at
precision 0.95 are threshold-free (every scored pair is ranked, matches and those below the
threshold).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vcopy.ann import AnnSpec
from vcopy.evaluate import Scores, evaluate, load_predictions, score
from vcopy.features import (
    DEFAULT_DESCRIPTOR,
    DESCRIPTORS,
    Descriptor,
    EncodedVideo,
    FailedVideo,
    create_descriptor,
    encode_videos,
)
from vcopy.groundtruth import GROUND_TRUTH, load_ground_truth, split_paths, vcopy_record
from vcopy.indexing import IndexSummary, index_videos
from vcopy.keyframes import DEFAULT_KEYFRAMES, KEYFRAMERS, create_keyframer, keyframer_kind
from vcopy.keyframes.ske import LearnedKeyFrames
from vcopy.library import Library
from vcopy.library_db import recorded_descriptor
from vcopy.localize import DEFAULT_LOCALIZER, LOCALIZERS, Localizer, Segment
from vcopy.localize.base import MapInput
from vcopy.pipeline import PipelineSpec
from vcopy.query import CopyFinder, QueryConfig, QueryResult, SimilarityMap
from vcopy.report import build_report, write_report
from vcopy.synth.benchmark import generate

LONG_FORM_FRAMES = 60  # both axes at least this long: a long query against a long reference


@dataclass
class TimedLocalizer:
    """Wraps a localizer and records the time per map (s) of each batch it runs (a query's maps)."""

    inner: Localizer
    seconds: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def match_threshold(self) -> float:
        return self.inner.match_threshold

    @property
    def models(self) -> list[dict[str, str]]:
        return self.inner.models

    @property
    def settings(self) -> dict[str, object]:
        return self.inner.settings

    @property
    def trained_on(self) -> str | None:
        return self.inner.trained_on

    def __call__(
        self, contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        return self.localize_batch([(contrast, query_timestamps_s, reference_timestamps_s)])[0]

    def localize_batch(self, maps: Sequence[MapInput]) -> list[list[Segment]]:
        started = time.perf_counter()
        segments = self.inner.localize_batch(maps)
        if maps:
            self.seconds += [(time.perf_counter() - started) / len(maps)] * len(maps)
        return segments


@dataclass
class SplitRun:
    """Per-localizer finders, results, map timings (s), and per-query latency (s) of one split."""

    finders: dict[str, CopyFinder]
    results: dict[str, list[QueryResult]] = field(default_factory=dict)
    map_seconds: dict[str, list[float]] = field(default_factory=dict)
    map_shapes: list[tuple[int, int]] = field(default_factory=list)
    long_form_maps: list[MapInput] = field(default_factory=list)
    query_seconds: list[float] = field(default_factory=list)


def build_library(
    root: Path,
    references: list[Path],
    descriptor: Descriptor,
    keyframes: str = DEFAULT_KEYFRAMES,
    keyframe_weights: Path | None = None,
) -> IndexSummary:
    shutil.rmtree(root, ignore_errors=True)
    keyframer = (
        create_keyframer(keyframes) if keyframe_weights is None else LearnedKeyFrames(keyframe_weights)
    )
    with Library.open(root, write=True, spec=PipelineSpec.of(descriptor, keyframer=keyframer)) as library:
        return index_videos(library, references, descriptor, keyframer=keyframer)


def _library_keyframes(root: Path) -> str:
    with Library.open(root) as library:
        return keyframer_kind(library.pipeline_spec.keyframes)


def train_library(work: Path, descriptor: Descriptor) -> Path:
    """WORK/library-train: a library of the references of the train split of the benchmark in
    WORK/bench, built when it is missing."""
    root = work / "library-train"
    if not root.exists():
        build_library(root, split_paths(work / "bench" / GROUND_TRUTH, "train", "references"), descriptor)
    return root


def run_split(
    library: Library,
    descriptor: Descriptor,
    queries: list[Path],
    names: list[str],
    thresholds: dict[str, float] | None = None,
    query_fps: float | None = None,
    spd_weights: Path | None = None,
) -> SplitRun:
    """Encode each query once (at ``query_fps``, with the default query views, as ``vcopy query``
    does), build its maps once, run every localizer on them (matches from ``thresholds`` where
    given, else from each localizer's own)."""
    thresholds = thresholds or {}
    finders = {
        n: CopyFinder(
            library,
            descriptor,
            QueryConfig(
                localizer=n, min_score=thresholds.get(n), query_fps=query_fps, spd_weights=spd_weights
            ),
        )
        for n in names
    }
    timers = {n: TimedLocalizer(f.localizer) for n, f in finders.items()}
    for n, finder in finders.items():
        finder.localizer = timers[n]
    first = finders[names[0]]
    run = SplitRun(finders, {n: [] for n in names})
    started = time.perf_counter()
    for item in encode_videos(queries, descriptor, first.query_spec.sampling, views=first.config.views):
        if isinstance(item, FailedVideo):
            for n in names:
                run.results[n].append(QueryResult(path=item.path, error=item.reason))
            started = time.perf_counter()
            continue
        video: EncodedVideo = item
        maps = first.similarity_maps(video)
        encoded_and_mapped = time.perf_counter() - started
        run.map_shapes += [m.contrast.shape for m in maps]
        run.long_form_maps += long_form_maps(video, maps)
        for n, finder in finders.items():
            t = time.perf_counter()
            run.results[n].append(finder.localize(video, maps))
            if n == DEFAULT_LOCALIZER:
                run.query_seconds.append(encoded_and_mapped + time.perf_counter() - t)
        started = time.perf_counter()
    for n, finder in finders.items():
        finder.localizer = timers[n].inner  # reports record the localizer's own settings
        run.map_seconds[n] = timers[n].seconds
    return run


def calibrated_threshold(gt: Path, report_path: Path, split: str) -> float:
    """The match threshold with the best video F1 (then segment F1) on ``split``, from every scored
    pair of the report."""
    truth = load_ground_truth(gt, split)
    predictions, _ = load_predictions(report_path)
    best: tuple[float, float, float] = (-1.0, -1.0, 0.0)
    for t in sorted({p.score for p in predictions.values()}):
        s = score(truth, {pair: replace(p, match=p.score >= t) for pair, p in predictions.items()})
        best = max(best, (s.video_f1, s.segment_f1, -t))
    return -best[2]


def write_reports(work: Path, split: str, run: SplitRun) -> dict[str, Path]:
    paths = {}
    for n, finder in run.finders.items():
        paths[n] = work / "reports" / f"{split}-{n}.json"
        paths[n].parent.mkdir(parents=True, exist_ok=True)
        write_report(build_report(finder, run.results[n]), str(paths[n]))
    return paths


def long_form_maps(video: EncodedVideo, maps: list[SimilarityMap]) -> list[MapInput]:
    """The maps of a long query against a long reference (both axes >= ``LONG_FORM_FRAMES``)."""
    return [
        (m.contrast, video.timestamps_s, m.reference_timestamps_s)
        for m in maps
        if min(m.contrast.shape) >= LONG_FORM_FRAMES
    ]


def time_long_form(localizer: Localizer, maps: list[MapInput]) -> tuple[float, float]:
    """(ms per map when all maps go as one batch, median ms of one map alone), after a warm-up."""
    localizer.localize_batch(maps[:1])
    started = time.perf_counter()
    localizer.localize_batch(maps)
    batched = (time.perf_counter() - started) / len(maps)
    alone = []
    for m in maps:
        started = time.perf_counter()
        localizer.localize_batch([m])
        alone.append(time.perf_counter() - started)
    return batched * 1000, float(np.median(alone)) * 1000


def neighbour_share(library: Library, references: list[Path], min_cosine: float = 0.85) -> float:
    """The share of consecutive stored frames (1 frame/s) of ``references`` whose descriptors have
    cosine similarity at least ``min_cosine``: how much of the footage holds still."""
    wanted = {p.resolve().as_posix() for p in references}
    similar, pairs = 0, 0
    for video in library.videos():
        if Path(video.path).resolve().as_posix() in wanted:
            vectors, _ = library.frames_of(video.id)
            v = vectors.astype(np.float32)
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            cosine = (v[1:] * v[:-1]).sum(axis=1)
            similar, pairs = similar + int((cosine >= min_cosine).sum()), pairs + len(cosine)
    return similar / max(1, pairs)


def print_breakdown(title: str, groups: dict[str, Scores]) -> None:
    print(f"\n{title}:\n")
    print("| group | queries | copied pairs | video R | µAP | segment F1 |")
    print("|---|---|---|---|---|---|")
    for group, s in groups.items():
        if s.true_pairs:  # groups of negative queries only have no recall to show
            print(
                f"| {group} | {s.queries} | {s.true_pairs} | {s.video_recall:.3f} | {s.video_micro_ap:.3f} | "
                f"{s.segment_f1:.3f} |"
            )


def _ms(seconds: list[float]) -> str:
    return f"{np.median(seconds) * 1000:.2f}" if seconds else "n/a"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="the small dataset (a smoke run, minutes)")
    parser.add_argument("--catalogue", action="store_true", help="generator version 3's catalogue dataset")
    parser.add_argument("--localizers", default=",".join(LOCALIZERS), help="comma-separated names")
    parser.add_argument("--descriptor", default=DEFAULT_DESCRIPTOR, choices=sorted(DESCRIPTORS))
    parser.add_argument("--calibrate", action="store_true", help="fit each threshold on the train split")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--index-spec",
        help="rebuild the library's approximate index with this spec (e.g. 'IVF256,PQ64;nprobe=16')",
    )
    parser.add_argument("--query-fps", type=float, help="suspects' frames/s (default: the library's)")
    parser.add_argument("--keyframes", default=DEFAULT_KEYFRAMES, choices=sorted(KEYFRAMERS))
    parser.add_argument(
        "--keyframe-weights",
        type=Path,
        help="learned key frames of a `vcopy train copy` run (RUN/ske.onnx; its SPD beside it)",
    )
    parser.add_argument(
        "--keep-library",
        action="store_true",
        help="reuse WORK_DIR/library when it was built with this descriptor",
    )
    args = parser.parse_args()
    names = args.localizers.split(",")
    work = args.work_dir
    gt = generate(work / "bench", "small" if args.small else "catalogue" if args.catalogue else "default")
    splits = [s for s in ("test", "long") if split_paths(gt, s, "queries")]
    references = [p for s in splits for p in split_paths(gt, s, "references")]

    descriptor = create_descriptor(args.descriptor, device=args.device)
    weights = args.keyframe_weights
    spd = LearnedKeyFrames(weights).spd_weights if weights is not None else None
    thresholds: dict[str, float] = {}
    if args.calibrate:
        train_references = split_paths(gt, "train", "references")
        build_library(work / "library-train", train_references, descriptor, args.keyframes, weights)
        with Library.open(work / "library-train") as library:
            train_queries = split_paths(gt, "train", "queries")
            train = run_split(library, descriptor, train_queries, names, None, args.query_fps, spd)
            for n, path in write_reports(work, "train", train).items():
                thresholds[n] = calibrated_threshold(gt, path, "train")
    if (
        args.keep_library
        and weights is None
        and recorded_descriptor(work / "library") == descriptor.name
        and _library_keyframes(work / "library") == args.keyframes
    ):
        with Library.open(work / "library", write=True) as library:  # nothing new: every video skipped
            summary = index_videos(library, references, descriptor)
            summary.video_seconds = sum(v.duration_s for v in library.videos())
    else:
        summary = build_library(work / "library", references, descriptor, args.keyframes, weights)
    if args.index_spec:
        with Library.open(work / "library", write=True) as library:
            library.rebuild_index(AnnSpec.parse(args.index_spec))
    library_bytes = sum(p.stat().st_size for p in (work / "library").rglob("*") if p.is_file())
    scores: dict[tuple[str, str], Scores] = {}
    runs: dict[str, SplitRun] = {}
    with Library.open(work / "library") as library:
        n_vectors = library.vector_count
        index_built = library.info().index_built
        for split in splits:
            split_queries = split_paths(gt, split, "queries")
            runs[split] = run_split(
                library, descriptor, split_queries, names, thresholds, args.query_fps, spd
            )
            for n, path in write_reports(work, split, runs[split]).items():
                scores[(split, n)] = evaluate(gt, path, split).overall

    video_minutes = summary.video_seconds / 60
    print(f"\nvcopy benchmark, {datetime.date.today().isoformat()}, {_machine()}")
    print(f"dataset: {gt} ({', '.join(splits)} splits); similarity maps at 1 frame/s")
    query_fps = runs["test"].finders[names[0]].query_spec.sample_fps
    print(f"queries: {query_fps:g} frames/s, views {', '.join(QueryConfig().views) or 'none'}")
    with Library.open(work / "library") as library:
        keyframes = library.pipeline_spec.keyframes
    print(f"descriptor: {descriptor.name}; key frames: {keyframes}")
    print(
        "match thresholds: "
        + ", ".join(f"{n} {runs['test'].finders[n].min_score:.3g}" for n in names)
        + (" (fitted on the train split)\n" if thresholds else " (shipped defaults)\n")
    )
    long_cols = "long seg F1 | long video µAP | " if "long" in splits else ""
    header = (
        "| localizer | segment P | segment R | segment F1 | video P | video R | video µAP | R@P95 | "
        f"{long_cols}ms/map short (median) | ms/map long (median) |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for n in names:
        s = scores[("test", n)]
        long_part = ""
        if "long" in splits:
            ls = scores[("long", n)]
            long_part = f"{ls.segment_f1:.3f} | {ls.video_micro_ap:.3f} | "
        print(
            f"| {n} | {s.segment_precision:.3f} | {s.segment_recall:.3f} | {s.segment_f1:.3f} | "
            f"{s.video_precision:.3f} | {s.video_recall:.3f} | {s.video_micro_ap:.3f} | "
            f"{s.video_recall_at_p95:.3f} | {long_part}"
            f"{_ms(runs['test'].map_seconds[n])} | "
            f"{_ms(runs['long'].map_seconds[n]) if 'long' in runs else 'n/a'} |"
        )
    default = names[0]
    evaluation = evaluate(gt, work / "reports" / f"test-{default}.json", "test")
    print_breakdown(
        f"Per edit, test split, {default} (a query can carry several edits)", evaluation.by_transform
    )
    if len(evaluation.by_shot) > 1:
        print_breakdown(f"Per kind of shot copied, test split, {default}", evaluation.by_shot)
    profiles = vcopy_record(gt)["generator"].get("shot_profiles", {})
    with Library.open(work / "library") as library:
        for split in splits:
            share = neighbour_share(library, split_paths(gt, split, "references"))
            profile = ", ".join(f"{k} {v}" for k, v in profiles.get(split, {}).items())
            still = f"1 frame/s neighbours at cosine >= 0.85 {share:.3f}"
            print(f"- shot profile, {split} references: {profile}, {still}")
    shapes = {s: np.median([a * b for a, b in runs[s].map_shapes]) for s in runs}
    print()
    print("- median map size (cells): " + ", ".join(f"{s} {v:.0f}" for s, v in shapes.items()))
    print(f"- library: {len(references)} videos, {video_minutes:.1f} video minutes, {n_vectors} vectors")
    print(f"- vectors stored per video-minute: {n_vectors / video_minutes:.1f}")
    print(f"- bytes on disk per video-hour: {library_bytes / (video_minutes / 60) / 1e6:.2f} MB")
    print(f"- approximate index: {index_built}")
    if summary.indexed:
        print(f"- index throughput: {summary.throughput:.1f} video s per wall s")
    long_form = runs["long"].long_form_maps if "long" in runs else []
    if long_form:
        cells = np.median([m[0].size for m in long_form])
        print(
            f"\nLong-form maps (long query x long reference, both axes >= {LONG_FORM_FRAMES} frames): "
            f"{len(long_form)} maps, median {cells:.0f} cells\n"
        )
        print("| localizer | ms/map, all maps in one batch | median ms/map, one at a time |")
        print("|---|---|---|")
        for n, finder in runs["long"].finders.items():
            batched, alone = time_long_form(finder.localizer, long_form)
            print(f"| {n} | {batched:.2f} | {alone:.2f} |")
    print()
    for split, run in runs.items():
        print(
            f"- median query latency ({split}, {DEFAULT_LOCALIZER}, decode to segments): "
            f"{np.median(run.query_seconds):.2f} s"
        )


if __name__ == "__main__":
    main()
