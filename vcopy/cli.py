"""The ``vcopy`` command: a thin layer that parses options, calls the Python API and renders results."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

import vcopy
from vcopy.errors import VcopyError

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_MATCH = 3
EXIT_MATCH_AND_SOME_FAILED = 4
EXIT_CANNOT_RUN = 5

# Nothing vcopy prints is read as rich markup (a file may be named "[/b].mp4"); styles come as Text.
stderr = Console(stderr=True, markup=False, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])
# inputs of a batch: one that cannot be read is named and skipped by the run, not refused by click
_INPUT_PATHS = click.Path(path_type=Path, readable=False)


def printable(value: object) -> str:
    """``value`` as one line of plain text: control and format characters (ESC, newlines, bidi
    overrides) and undecodable bytes of a file name escaped, so that no name can move the cursor,
    retitle the terminal or forge a table row."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape", "backslashreplace").decode()
        for ch in str(value)
    )


def _fail(message: str, code: int = EXIT_CANNOT_RUN) -> None:
    stderr.print(Text.assemble(("vcopy: error:", "bold red"), " ", printable(message)), soft_wrap=True)
    sys.exit(code)


def _about(path: object, message: str, style: str = "red") -> Text:
    """``PATH: message`` for stderr (a failure in red unless ``style`` says otherwise), as text."""
    return Text.assemble((printable(path), style), ": ", printable(message))


class FiniteFloat(click.FloatRange):
    """A float option in a range that also refuses NaN and infinities (NaN passes any range)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{printable(value)!r} is not a finite number.", param, ctx)
        return number


def _friendly_errors[F: Callable[..., Any]](command: F) -> F:
    """Expected failures become one line on stderr and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise  # usage errors: click prints them and exits with 2
        except VcopyError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:
            if os.environ.get("VCOPY_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (set VCOPY_DEBUG=1 for the traceback)")

    return wrapper  # type: ignore[return-value]


_verbosity = 1  # 0 with -q (results and problems only), 2 with -v (every file's outcome)


def _note(message: str | Text) -> None:
    """Progress-like information on stderr (not with -q)."""
    if _verbosity >= 1:
        stderr.print(message, soft_wrap=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", style="dim", markup=False),
        console=stderr,
        transient=True,
        disable=_verbosity < 1,
    )


def _video_reporter(progress: Progress, task: TaskID) -> Callable[[str, str], None]:
    """An ``on_video(path, outcome)`` for ``index_videos``: advances ``task`` and prints failures
    and warnings."""

    def on_video(path: str, outcome: str) -> None:
        kind, _, detail = outcome.partition(": ")
        if kind == "warning":
            progress.console.print(_about(path, f"warning: {detail}", "yellow"), soft_wrap=True)
            return
        progress.advance(task)
        progress.update(task, current=printable(Path(path).name))
        if kind == "failed":
            progress.console.print(_about(path, detail), soft_wrap=True)
        elif _verbosity >= 2:
            progress.console.print(_about(path, kind, "green"), soft_wrap=True)

    return on_video


@contextlib.contextmanager
def _training_progress(
    total_steps: int,
) -> Iterator[tuple[Callable[[str], None], Callable[[int, int], None]]]:
    """Progress of a training command: (on_video, on_step), told of each video encoded and each
    training step done."""
    with _progress() as progress:
        encoding = progress.add_task("encoding train split", total=None, current="")
        training = progress.add_task("training", total=total_steps, current="", visible=False)

        def on_video(path: str) -> None:
            progress.update(encoding, advance=1, current=path)

        def on_step(step: int, total: int) -> None:
            progress.update(encoding, visible=False)
            progress.update(training, completed=step, visible=True)

        yield on_video, on_step


def _losses_text(loss: dict[str, float]) -> str:
    """Loss terms as "name value ..." (ultralytics' "_loss" suffixes dropped)."""
    return " ".join(f"{name.removesuffix('_loss')} {value:.3f}" for name, value in loss.items())


def _hms(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}"


def _table_console(json_destination: str | None) -> Console:
    """Where tables go: stdout, or stderr when the JSON goes to stdout (``--json -``); wide when
    not a terminal, so that paths are not folded in logs."""
    to_stderr = json_destination == "-"
    stream = sys.stderr if to_stderr else sys.stdout
    width = None if stream.isatty() else 1000  # a log or a pipe: no path folded, whatever its length
    return Console(stderr=to_stderr, width=width, markup=False, highlight=False)


def _decoding_options[F: Callable[..., Any]](command: F) -> F:
    """--device and --decode-timeout, shared by every command that decodes and describes videos."""
    command = click.option(
        "--decode-timeout",
        default=120.0,
        show_default=True,
        type=FiniteFloat(min=1, max=86_400),
        help="Seconds a decoder may go without producing a frame before it is killed.",
    )(command)
    return click.option(
        "--device", default="cpu", show_default=True, help="Torch device for the descriptor (cpu, cuda)."
    )(command)


def _ray_options[F: Callable[..., Any]](command: F) -> F:
    """--ray [ADDRESS] and --ray-workers, for the commands that can run on a Ray cluster."""
    command = click.option(
        "--ray-workers",
        default=None,
        type=click.IntRange(min=1),
        help="With --ray: encoding workers (Ray actors) [default: one per CPU of the cluster, per GPU "
        "with --device cuda].",
    )(command)
    return click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="local",
        default=None,
        metavar="[ADDRESS]",
        help="Decode and describe on a Ray cluster (pip install 'vcopy[ray]'): HOST:PORT of a running "
        "one, auto for the one this machine belongs to, none (or local) to start one here for this run. "
        "Video paths must be readable by every worker.",
    )(command)


def _ray_session(address: str | None, workers: int | None, device: str) -> Any:
    """The Ray session of --ray (or a null context without it), checked before heavy work."""
    if address is None:
        if workers is not None:
            raise click.UsageError("--ray-workers goes with --ray")
        return contextlib.nullcontext()
    from vcopy.distributed import RAY_MISSING, RayCluster, RaySession, check_reachable, parse_address

    try:
        endpoint = parse_address(address)
    except ValueError as exc:
        raise click.BadParameter(f"{printable(address)!r}: {exc}", param_hint="--ray") from None
    if importlib.util.find_spec("ray") is None:
        raise click.UsageError(RAY_MISSING)
    if endpoint is not None:
        check_reachable(address, endpoint)  # before the library is opened or a model loaded
    local = address in ("local", "none")
    return RaySession(RayCluster(None if local else address, workers), device)


_existing_library = click.option(
    "--library",
    "library_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Library folder made by `vcopy index`.",
)


def _descriptor_option(help_text: str) -> Callable[[F], F]:
    from vcopy.features import DEFAULT_DESCRIPTOR, DESCRIPTORS

    return click.option(
        "--descriptor",
        "descriptor_name",
        default=None,
        type=click.Choice(sorted(DESCRIPTORS)),
        help=f"{help_text} [default: {DEFAULT_DESCRIPTOR}]",
    )


def _keyframer_names() -> list[str]:
    from vcopy.keyframes import KEYFRAMERS

    return sorted(KEYFRAMERS)


def _library_descriptor(library_path: Path, requested: str | None) -> str:
    """The registry name of the descriptor to index with: the one an existing library records (a
    different request is a usage error), else ``requested`` or the default."""
    from vcopy.features import DEFAULT_DESCRIPTOR, descriptor_kind

    return _library_setting(library_path, "descriptor", requested, DEFAULT_DESCRIPTOR, descriptor_kind)


def _library_keyframes(library_path: Path, requested: str | None) -> str:
    """The registry name of the key-framer to index with, as ``_library_descriptor`` decides."""
    from vcopy.keyframes import DEFAULT_KEYFRAMES, keyframer_kind

    return _library_setting(library_path, "keyframes", requested, DEFAULT_KEYFRAMES, keyframer_kind)


def _library_setting(
    library_path: Path, key: str, requested: str | None, default: str, kind: Callable[[str], str]
) -> str:
    from vcopy.library import recorded_settings

    recorded = recorded_settings(library_path)
    if recorded is None:
        return requested or default
    built = kind(recorded.get(key, default))
    if requested is not None and built != requested:
        what, other = ("key frames", "other key frames") if key == "keyframes" else (key, f"another {key}")
        raise click.UsageError(
            f"{printable(library_path)} was built with {what} {built}, not {requested}; index into a "
            f"new library to use {other}"
        )
    return built


def _views(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """--views: names of vcopy.features.views, checked before any work."""
    from vcopy.features.views import VIEWS

    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip() and v.strip() != "none")
    unknown = [n for n in names if n not in VIEWS]
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r}: choose from {', '.join(VIEWS)} (or none)")
    return names


def _json_destination(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--json FILE``, checked before any work: a new name or a regular file, in a folder where a
    file can be made (never a device node, FIFO or symbolic link, which the report would replace)."""
    from vcopy.files import output_file_problem

    if value is None or value == "-":
        return value
    problem = output_file_problem(Path(value))
    if problem:
        raise click.BadParameter(f"{printable(value)}: {problem}", ctx, param)
    return value


def _output_folder(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """An output folder, made (or checked writable) before any work."""
    if value is None:
        return value
    try:
        value.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(f"{value}: cannot be made ({exc.strerror or exc})", ctx, param) from None
    if not os.access(value, os.W_OK):
        raise click.BadParameter(f"{value}: cannot be written", ctx, param)
    return value


_json_output = click.option(
    "--json",
    "json_destination",
    metavar="FILE|-",
    callback=_json_destination,
    help="Write the JSON to FILE, or to stdout with '-' (tables then go to stderr).",
)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``-q`` / ``-v``, before the subcommand (``vcopy -q query``) or after it (``vcopy query -q``)."""
    global _verbosity
    if value:
        level = 0 if param.name == "quiet" else 2
        if ctx.meta.setdefault("vcopy.verbosity", level) != level:
            raise click.UsageError("-q and -v contradict each other", ctx)
        _verbosity = level
    return value


def _verbosity_options() -> list[click.Parameter]:
    return [
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_set_verbosity,
            help="Print only results, warnings and errors.",
        ),
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_set_verbosity,
            help="Also name every file and what became of it.",
        ),
    ]


@click.group(params=_verbosity_options())
@click.version_option(vcopy.__version__, prog_name="vcopy")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Find copies of videos: index a library of your videos, then check suspect videos against it."""
    global _verbosity
    _verbosity = ctx.meta.get("vcopy.verbosity", 1)  # a subcommand's -q / -v may still change it


@cli.command("index")
@click.argument("paths", nargs=-1, required=True, type=_INPUT_PATHS)
@click.option(
    "--library",
    "library_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Library folder (created if missing).",
)
@click.option("--prune", is_flag=True, help="Remove library videos under PATHS whose files no longer exist.")
@_descriptor_option("Frame descriptor of a new library (an existing one keeps its own).")
@click.option(
    "--keyframes",
    "keyframes_name",
    default=None,
    type=click.Choice(_keyframer_names()),
    help="Which sampled frames a new library keeps: every one (uniform) or learned key frames (ske); "
    "an existing library keeps its own. [default: uniform]",
)
@click.option(
    "--keyframe-weights",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Learned key frames of your own (RUN/ske.onnx of `vcopy train copy`) instead of the shipped "
    "ones; query such a library with --spd-weights RUN/spd.onnx.",
)
@click.option(
    "--sample-fps",
    default=1.0,
    show_default=True,
    type=FiniteFloat(min=0.05, max=30),
    help="Frames sampled per second of video (fixed when the library is created).",
)
@_decoding_options
@_ray_options
@click.option(
    "--commit-every",
    default=30.0,
    show_default=True,
    type=FiniteFloat(min=0),
    help="Seconds between commits of indexed videos (work since the last commit is redone after a crash).",
)
@_friendly_errors
def index_command(
    paths: tuple[Path, ...],
    library_path: Path,
    prune: bool,
    descriptor_name: str | None,
    keyframes_name: str | None,
    keyframe_weights: Path | None,
    sample_fps: float,
    device: str,
    decode_timeout: float,
    ray_address: str | None,
    ray_workers: int | None,
    commit_every: float,
) -> None:
    """Index the videos in PATHS (files or folders) into a library.

    Incremental: unchanged files are skipped, changed files re-indexed. A file that cannot be
    decoded is reported and recorded as failed; the library is never damaged.

    Exit codes: 0 all indexed or skipped; 1 some files failed; 2 usage error; 5 the library could
    not be opened (locked by another writer, unreadable).
    """
    from vcopy.indexing import index_videos
    from vcopy.library import Library
    from vcopy.video import SamplingConfig, find_videos

    total = len(find_videos(paths, _skipped_file))
    if total == 0 and not prune:
        raise click.UsageError(f"no video files in {_listed(paths)} (nothing to index)")
    _check_device(device)
    from vcopy.library import check_no_writer

    check_no_writer(library_path)  # before any model is loaded
    ray_session = _ray_session(ray_address, ray_workers, device)
    descriptor_name = _library_descriptor(library_path, descriptor_name)
    if keyframe_weights is not None and keyframes_name not in (None, "ske"):
        raise click.UsageError("--keyframe-weights are learned key frames: they go with --keyframes ske")
    keyframes_name = _library_keyframes(library_path, "ske" if keyframe_weights else keyframes_name)
    from vcopy.features import create_descriptor
    from vcopy.keyframes import KeyFramer, create_keyframer
    from vcopy.keyframes.ske import LearnedKeyFrames
    from vcopy.text.search import TEXT_DIR, open_text_space, sync_text_index

    descriptor = create_descriptor(descriptor_name, device=device)
    keyframer: KeyFramer = (
        LearnedKeyFrames(keyframe_weights, device)
        if keyframe_weights is not None
        else create_keyframer(keyframes_name, device=device)
    )
    if isinstance(keyframer, LearnedKeyFrames):  # before a library records them
        keyframer.check_descriptor(descriptor.name)
    sampling = SamplingConfig(
        sample_fps=sample_fps, frame_size=descriptor.frame_size, stall_timeout_s=decode_timeout
    )
    with Library.open(
        library_path, write=True, descriptor=descriptor, sampling=sampling, keyframer=keyframer
    ) as library:
        if float(library.meta["sample_fps"]) != sample_fps:
            _note(f"note: library samples {library.sampling.sample_fps:g} frames/s; using that")
        with ray_session as ray, _progress() as progress:
            task = progress.add_task("indexing", total=total, current="")
            summary = index_videos(
                library,
                paths,
                descriptor,
                prune=prune,
                commit_every_s=commit_every,
                stall_timeout_s=decode_timeout,
                on_video=_video_reporter(progress, task),
                keyframer=keyframer,
                ray=ray,
            )
        if summary.indexed or summary.pruned or not (library.root / TEXT_DIR).is_dir():
            status = stderr.status("text search: updating the library's text index")
            with status if _verbosity >= 1 else contextlib.nullcontext():
                _, sync = sync_text_index(library, open_text_space(library))
            if sync.not_searchable:
                _note(
                    f"note: {len(sync.not_searchable)} videos were indexed by an older vcopy "
                    "and cannot be searched by text until they are indexed again"
                )
    click.echo(
        f"indexed {len(summary.indexed)}, skipped {len(summary.skipped)}, failed {len(summary.failed)}, "
        f"pruned {len(summary.pruned)} videos; {summary.video_seconds:.1f} video seconds in "
        f"{summary.wall_seconds:.1f} s wall time ({summary.throughput:.1f} video s per wall s)"
    )
    sys.exit(EXIT_SOME_FAILED if summary.failed else EXIT_OK)


@cli.command("search-text")
@click.argument("text", required=False)
@_existing_library
@click.option(
    "--queries",
    "queries_file",
    type=click.Path(path_type=Path),
    help="A file with one query per line (instead of TEXT); one ranked list per query.",
)
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1), help="Videos per query.")
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A model made by `vcopy train text` (OUT/text-model.pt); default: zero-shot.",
)
@_json_output
@_friendly_errors
def search_text_command(
    text: str | None,
    library_path: Path,
    queries_file: Path | None,
    top: int,
    model_path: Path | None,
    json_destination: str | None,
) -> None:
    """Rank the library's videos for TEXT (e.g. "a dog running on a beach"), each with its
    best-matching moment.

    Works on any indexed library with no training (zero-shot: ImageNet classes of the frames in
    the MiniLM text space), or with a model trained by `vcopy train text` (--model). Nothing is
    decoded again and nothing is downloaded.
    """
    from vcopy.library import Library
    from vcopy.report import write_report

    if (text is None) == (queries_file is None):
        raise click.UsageError("give either TEXT or --queries FILE")
    if queries_file is not None:
        try:
            texts = [line.strip() for line in queries_file.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise click.BadParameter(
                f"{queries_file}: cannot read queries ({reason})", param_hint="--queries"
            ) from None
        if not texts:
            raise click.BadParameter(f"{queries_file}: no queries (one per line)", param_hint="--queries")
    else:
        assert text is not None
        if not text.strip():
            raise click.BadParameter("empty query", param_hint="TEXT")
        texts = [text.strip()]
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with Library.open(library_path) as library:
        from vcopy.text.search import TextSearcher, search_report

        searcher = TextSearcher(library, model_path=model_path)
        started = time.perf_counter()
        results = searcher.search(texts, top)
        seconds = time.perf_counter() - started
        report = search_report(searcher, results, started_utc)
    if searcher.sync.not_searchable:
        _note(
            f"note: {len(searcher.sync.not_searchable)} videos were indexed by an older vcopy without "
            "what text search reads; run `vcopy index` on them again to search them"
        )
    console = _table_console(json_destination)
    for result in results:
        table = Table(title=printable(repr(result.text)), title_justify="left")
        for column in ("#", "score", "moment", "video"):
            table.add_column(column, justify="right" if column != "video" else "left")
        for rank, hit in enumerate(result.hits, 1):
            moment = f"{_hms(hit.moment.start_s)}-{_hms(hit.moment.end_s)}"
            table.add_row(str(rank), f"{hit.score:.3f}", moment, printable(hit.path))
        console.print(table)
    per_query_ms = seconds / len(texts) * 1000
    _note(f"{_count(len(texts), 'query', 'queries')} in {seconds:.3f} s ({per_query_ms:.1f} ms per query)")
    if json_destination:
        write_report(report, json_destination)


@cli.command("query")
@click.argument("paths", nargs=-1, required=True, type=_INPUT_PATHS)
@_existing_library
@_json_output
@click.option(
    "--localizer",
    default="spd",
    show_default=True,
    help="Localizer used on similarity maps: spd (the learned detector), tn (temporal network), "
    "dp (dynamic programming), hv (Hough voting), dtw (dynamic time warping).",
)
@click.option(
    "--spd-weights",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="SPD weights made by `vcopy train spd` (default: the weights shipped with vcopy).",
)
@click.option(
    "--candidates",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Library videos per query that get a similarity map and localization.",
)
@click.option(
    "--min-score",
    default=None,
    type=FiniteFloat(min=0, max=2),
    help="A pair is a match from this score [default: the localizer's threshold, calibrated on the "
    "benchmark's train split]. Weaker pairs are listed in the report's below_threshold.",
)
@click.option(
    "--views",
    default=None,
    callback=_views,
    help="Query views, comma-separated, or 'none': a suspect frame also counts as its mirror (flip), "
    "without flat borders (trim), its centre (centre), its halves (halves) [default: flip,trim].",
)
@click.option(
    "--fail-on-match", is_flag=True, help="Exit with 3 (4 if some inputs also failed) when copies are found."
)
@click.option(
    "--evidence",
    "evidence_dir",
    type=click.Path(path_type=Path, file_okay=False),
    callback=_output_folder,
    help="Also write an evidence page per match (and index.html) into this folder (see `vcopy evidence`).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv", "vsc"]),
    default="table",
    show_default=True,
    help="What goes to stdout: the table, the JSON report, one CSV row per copied segment, or a "
    "VSC22 matching-track submission (CSV, every scored pair, videos named by file stem).",
)
@_decoding_options
@_ray_options
@_friendly_errors
def query_command(
    paths: tuple[Path, ...],
    library_path: Path,
    json_destination: str | None,
    evidence_dir: Path | None,
    output_format: str,
    localizer: str,
    spd_weights: Path | None,
    candidates: int,
    min_score: float | None,
    views: tuple[str, ...] | None,
    fail_on_match: bool,
    device: str,
    decode_timeout: float,
    ray_address: str | None,
    ray_workers: int | None,
) -> None:
    """Check the videos in PATHS (files or folders) for copies of library videos.

    Prints one row per copied segment (query and reference start-end, score) and writes the JSON
    report with --json.

    \b
    Exit codes (for cron jobs):
      0  every input was processed (copies found or not)
      1  some inputs failed (each named on stderr); the rest were processed
      2  usage error
      3  copies were found and --fail-on-match was given
      4  as 3, and some inputs failed
      5  could not run (library missing or unreadable)
    """
    from vcopy.library import Library
    from vcopy.localize import LOCALIZERS
    from vcopy.report import write_report
    from vcopy.video import find_videos

    if localizer not in LOCALIZERS:
        raise click.BadParameter(f"choose from {', '.join(sorted(LOCALIZERS))}", param_hint="--localizer")
    if output_format != "table" and json_destination == "-":
        raise click.UsageError(f"--json - and --format {output_format} would both write to stdout")
    files = find_videos(paths, _skipped_file)
    if not files:  # a cron job must not read "0 queries" as "no copies"
        raise click.UsageError(f"no video files in {_listed(paths)}")
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    table_console = _table_console(json_destination)
    ray_session = _ray_session(ray_address, ray_workers, device)
    with Library.open(library_path) as library:
        _check_device(device)
        from vcopy.features import create_descriptor
        from vcopy.features.views import DEFAULT_VIEWS
        from vcopy.query import CopyFinder, QueryConfig
        from vcopy.report import build_report, report_csv, report_vsc_csv

        config = QueryConfig(
            localizer=localizer,
            spd_weights=spd_weights,
            candidates=candidates,
            min_score=min_score,
            stall_timeout_s=decode_timeout,
            views=DEFAULT_VIEWS if views is None else views,
        )
        finder = CopyFinder(library, create_descriptor(library.meta["descriptor"], device), config)
        results = []
        with ray_session as ray, _progress() as progress:
            task = progress.add_task("querying", total=len(files), current="")
            for result in finder.query_many(files, ray):
                results.append(result)
                progress.advance(task)
                progress.update(task, current=printable(result.path.name))
                if not result.ok:
                    progress.console.print(_about(result.path, str(result.error)), soft_wrap=True)
                for warning in result.warnings:
                    progress.console.print(
                        _about(result.path, f"warning: {warning}", "yellow"), soft_wrap=True
                    )
                if result.ok and _verbosity >= 2:
                    copied = _count(len(result.matches), "library video copied", "library videos copied")
                    progress.console.print(_about(result.path, copied, "green"), soft_wrap=True)
        report = build_report(finder, results, started_utc)
        if evidence_dir is not None:
            from vcopy.evidence import EvidenceWriter

            writer = EvidenceWriter(library, finder.descriptor, config.background_rank, config.views)
            pages = writer.write(report, evidence_dir)
            _note(f"{_count(len(pages), 'evidence page', 'evidence pages')} in {printable(evidence_dir)}")
    if output_format == "table":
        table_console.print(_results_table(results, 1.0 / finder.sampling.sample_fps))
    elif output_format == "json":
        write_report(report, "-")
    elif output_format == "vsc":
        sys.stdout.write(report_vsc_csv(report))
    else:
        sys.stdout.write(report_csv(report, printable if sys.stdout.isatty() else str))
    if json_destination:
        write_report(report, json_destination)
    failed = any(not r.ok for r in results)
    found = any(r.matches for r in results)
    if fail_on_match and found:
        sys.exit(EXIT_MATCH_AND_SOME_FAILED if failed else EXIT_MATCH)
    sys.exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def _skipped_file(path: Path) -> None:
    """With -v, a file of a searched folder that is not taken as a video is named."""
    if _verbosity >= 2:
        stderr.print(_about(path, "skipped (not a video file name)", "dim"), soft_wrap=True)


def _span(
    start_s: float,
    end_s: float,
    start_range: tuple[float, float],
    end_range: tuple[float, float],
    step_s: float,
) -> str:
    """``start–end``, with ``(start ±X s, end ±Y s)`` for ends whose range a flat map widened."""
    from vcopy.localize.base import MARGIN_STEPS

    text = f"{_hms(start_s)}–{_hms(end_s)}"
    notes = []
    for name, at, (lo, hi) in (("start", start_s, start_range), ("end", end_s, end_range)):
        spread = max(at - lo, hi - at)
        if spread > (MARGIN_STEPS + 0.01) * step_s:  # widened by a flat map
            notes.append(f"{name} ±{spread:.1f} s")
    return f"{text} ({', '.join(notes)})" if notes else text


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _check_device(device: str) -> None:
    """``--device`` is cpu, or cuda[:N] with a GPU visible (checked before any model is loaded;
    torch is imported only to look for a GPU)."""
    if device == "cpu":
        return
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise click.BadParameter(
            f"{printable(device)!r} is not a device vcopy runs on (cpu, cuda, cuda:N)", param_hint="--device"
        )
    import torch

    if not torch.cuda.is_available():
        raise click.BadParameter(f"{printable(device)}: no CUDA GPU is visible here", param_hint="--device")


def _listed(paths: tuple[Path, ...]) -> str:
    shown = ", ".join(printable(p) for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _results_table(results: list, step_s: float) -> Table:
    """One row per copied segment, best first; paths fold, times never do. An end whose range a
    flat map widened is shown with its ± seconds."""
    rows = [
        (m.score, s.score, result.path, m.reference.path, s, r)
        for result in results
        for m in result.matches
        for s, r in zip(m.segments, m.ranges, strict=True)
    ]
    table = Table(title="copies found" if rows else "no copies found", title_justify="left")
    for column in ("query", "reference", "query segment", "reference segment", "score"):
        table.add_column(column, justify="right" if column == "score" else "left", overflow="fold")
    for time_column in table.columns[2:]:
        time_column.no_wrap = True
    for _, _, query_path, reference_path, s, r in sorted(rows, key=lambda row: (-row[0], -row[1])):
        table.add_row(
            printable(query_path),
            printable(reference_path),
            _span(s.query_start_s, s.query_end_s, r.query_start_s, r.query_end_s, step_s),
            _span(s.reference_start_s, s.reference_end_s, r.reference_start_s, r.reference_end_s, step_s),
            f"{s.score:.3f}",
        )
    n_ok = sum(r.ok for r in results)
    n_match = sum(bool(r.matches) for r in results)
    n_failed = len(results) - n_ok
    n_clean = n_ok - n_match
    queries = _count(len(results), "query", "queries")
    table.caption = f"{queries}: {n_match} with copies, {n_clean} without, {n_failed} failed"
    return table


@cli.command("evidence")
@click.argument(
    "report_path", metavar="REPORT.json", type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    callback=_output_folder,
    help="Folder for the pages (created if missing).",
)
@_friendly_errors
def evidence_command(report_path: Path, out_dir: Path) -> None:
    """Write one self-contained HTML page per match of REPORT.json (made by `vcopy query --json`)
    and an index page into OUT: both files by path and SHA-256 (checked again), the segments in
    seconds and timecodes, matched frames side by side, the similarity map with the segments on
    it, the models and parameters of the run. The pages open with no network.

    The report's library must still be there (the query is decoded again to draw the map).
    """
    from vcopy.library import Library
    from vcopy.report import read_report

    report = read_report(report_path)
    with Library.open(Path(report["library"]["path"])) as library:
        from vcopy.evidence import EvidenceWriter
        from vcopy.features import create_descriptor
        from vcopy.query import QueryConfig

        rank = report["parameters"].get("background_rank", QueryConfig.background_rank)
        views = tuple(str(v) for v in report["parameters"].get("views", ()))
        writer = EvidenceWriter(library, create_descriptor(library.meta["descriptor"]), int(rank), views)
        pages = writer.write(report, out_dir)
    click.echo(
        f"{_count(len(pages), 'evidence page', 'evidence pages')} and index.html in {printable(out_dir)}"
    )


@cli.command("eval")
@click.argument("report_path", metavar="REPORT.json", type=click.Path(path_type=Path))
@click.option(
    "--gt",
    "gt_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Ground truth: vcopy's (vcopy.groundtruth/1, e.g. from examples/make_benchmark.py), a VSC22 "
    "matching CSV (query_id,ref_id,query_start,query_end,ref_start,ref_end) or VCSL's annotations.",
)
@click.option("--split", default=None, help="Score only the ground-truth queries of this split.")
@click.option(
    "--json",
    "json_destination",
    metavar="FILE|-",
    callback=_json_destination,
    help="Write the scores as JSON (stdout with '-').",
)
@_friendly_errors
def eval_command(report_path: Path, gt_path: Path, split: str | None, json_destination: str | None) -> None:
    """Score a `vcopy query` report against ground truth.

    Video level: precision, recall, F1 over (query, reference) pairs and micro AP (VSC22).
    Segment level: precision, recall, F1 of copied-segment boxes (VCSL protocol). Broken down per
    transformation, per speed and per kind of shot copied when the ground truth names them. Files
    are matched by SHA-256 (vcopy's ground truth) or by file stem (VSC22, VCSL: a query of the
    report that such a file does not name has no copies).
    """
    from dataclasses import asdict

    from vcopy.evaluate import evaluate
    from vcopy.report import write_report

    result = evaluate(gt_path, report_path, split)
    if result.missing_queries:
        stderr.print(
            Text(
                f"{len(result.missing_queries)} ground-truth queries are not in the report "
                f"(scored as misses), e.g. {printable(result.missing_queries[0])}",
                style="yellow",
            )
        )
    console = _table_console(json_destination)
    console.print(_scores_table("overall", {"all": result.overall}))
    console.print(_scores_table("per transformation", result.by_transform))
    console.print(_scores_table("per speed", result.by_speed))
    if len(result.by_shot) > 1:  # ground truth that names the kind of shot each copy copies
        console.print(_scores_table("per kind of shot copied", result.by_shot))
    if json_destination:
        write_report(asdict(result), json_destination)


def _scores_table(title: str, groups: dict) -> Table:
    table = Table(title=title, title_justify="left")
    columns = (
        "group",
        "queries",
        "true pairs",
        "predicted",
        "video P",
        "video R",
        "video F1",
        "µAP",
        "R@P95",
    )
    for column in (*columns, "segment P", "segment R", "segment F1"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for name, s in groups.items():
        table.add_row(
            printable(name),
            str(s.queries),
            str(s.true_pairs),
            str(s.predicted_pairs),
            *(
                f"{v:.3f}"
                for v in (
                    s.video_precision,
                    s.video_recall,
                    s.video_f1,
                    s.video_micro_ap,
                    s.video_recall_at_p95,
                    s.segment_precision,
                    s.segment_recall,
                    s.segment_f1,
                )
            ),
        )
    return table


@cli.group("library")
def library_group() -> None:
    """Look after a library: what it holds, removing videos, checking and rebuilding its files."""


_library_argument = click.argument("library_path", metavar="LIBRARY", type=click.Path(path_type=Path))
_json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _echo_json(records: Any) -> None:
    """Dataclasses (or lists of them) as indented JSON on stdout."""
    import dataclasses
    import json

    plain = (
        [dataclasses.asdict(r) for r in records] if isinstance(records, list) else dataclasses.asdict(records)
    )
    click.echo(json.dumps(plain, indent=2))


@library_group.command("info")
@_library_argument
@_json_flag
@_friendly_errors
def library_info_command(library_path: Path, as_json: bool) -> None:
    """What LIBRARY holds: videos, hours, vectors, bytes on disk, descriptor, index, state id."""
    import dataclasses

    from vcopy.library import Library

    with Library.open(library_path) as library:
        info = library.info()
    if as_json:
        _echo_json(info)
        return
    table = Table(show_header=False, box=None)
    for key, value in dataclasses.asdict(info).items():
        shown = f"{value:.2f}" if isinstance(value, float) and key == "hours" else str(value)
        table.add_row(key.replace("_", " "), printable(shown))
    Console(markup=False, highlight=False).print(table)


@library_group.command("ls")
@_library_argument
@_json_flag
@_friendly_errors
def library_ls_command(library_path: Path, as_json: bool) -> None:
    """The videos in LIBRARY: path, duration, frames, indexed file's SHA-256."""
    from vcopy.library import Library

    with Library.open(library_path) as library:
        videos = library.videos()
    if as_json:
        _echo_json(videos)
        return
    for video in videos:
        click.echo(
            f"{printable(video.path)}\t{video.duration_s:.1f} s\t{video.frames} frames\t{video.sha256}"
        )


@library_group.command("rm")
@_library_argument
@click.argument("names", metavar="PATHS...", nargs=-1, required=True, type=click.Path())
@_friendly_errors
def library_rm_command(library_path: Path, names: tuple[str, ...]) -> None:
    """Remove the videos at PATHS (as indexed: files, or folders for everything under them) from
    LIBRARY. The files themselves are not touched. Exit code 1 when a PATH names no library video."""
    from vcopy.library import Library

    for name in names:  # "" (an unset variable in a script) would name the working folder
        if not name.strip():
            raise click.BadParameter(f"{name!r} is not a path (an unset variable?)", param_hint="PATHS")
    paths = tuple(Path(name) for name in names)
    with Library.open(library_path, write=True) as library:
        by_path = {v.path: v.id for v in library.videos()}
        doomed: dict[str, int] = {}
        missing = []
        for path in paths:
            root = str(path.absolute().resolve()) if path.exists() else str(path.absolute())
            found = {p: i for p, i in by_path.items() if p == root or p.startswith(root.rstrip("/") + "/")}
            if not found:
                missing.append(path)
            doomed.update(found)
        library.remove(sorted(doomed.values()))
    for path in missing:
        stderr.print(_about(path, "not in the library"), soft_wrap=True)
    click.echo(f"removed {_count(len(doomed), 'video', 'videos')}")
    sys.exit(EXIT_SOME_FAILED if missing else EXIT_OK)


@library_group.command("verify")
@_library_argument
@_friendly_errors
def library_verify_command(library_path: Path) -> None:
    """Check every file of LIBRARY against the SHA-256 the library recorded for it. Exit code 5
    (and one line per problem) when one is missing or damaged."""
    from vcopy.library import Library

    with Library.open(library_path) as library:
        problems = library.verify()
        count = len(library)
    for problem in problems:
        stderr.print(Text(printable(problem), style="red"), soft_wrap=True)
    if problems:
        sys.exit(EXIT_CANNOT_RUN)
    click.echo(f"ok: {_count(count, 'video', 'videos')}, every file as recorded")


@library_group.command("rebuild-index")
@_library_argument
@click.option(
    "--spec",
    default=None,
    help="FAISS index_factory string (Flat, IVF4096,PQ64, IVF1024,Flat, ...; ';nprobe=N' to set "
    "nprobe) or auto [default: the library's own, auto for a new library].",
)
@_friendly_errors
def library_rebuild_index_command(library_path: Path, spec: str | None) -> None:
    """Build LIBRARY's approximate index again from its vector files (trained again where the index
    needs training), e.g. after damage or to change its kind."""
    from vcopy.ann import AnnSpec
    from vcopy.library import Library

    try:
        parsed = AnnSpec.parse(spec) if spec is not None else None
    except ValueError as exc:
        raise click.BadParameter(printable(exc), param_hint="--spec") from None
    with Library.open(library_path, write=True) as library:
        started = time.perf_counter()
        ann = library.rebuild_index(parsed)
        click.echo(f"rebuilt: {ann.spec}, {ann.ntotal} vectors in {time.perf_counter() - started:.1f} s")


@library_group.command("upgrade")
@_library_argument
@_friendly_errors
def library_upgrade_command(library_path: Path) -> None:
    """Convert a library made by an older vcopy to this one's layout, in place (vectors kept)."""
    from vcopy.library import SCHEMA_VERSION, Library

    with Library.open(library_path, write=True) as library:
        videos = _count(len(library), "video", "videos")
        click.echo(f"{printable(library.root)}: library schema {SCHEMA_VERSION}, {videos}")


@cli.group("train")
def train_group() -> None:
    """Train vcopy's models from unlabeled videos (copies are synthesised)."""


@train_group.command("spd")
@click.argument("dataset", type=click.Path(path_type=Path, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--steps-per-epoch", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", "learning_rate", default=2e-3, show_default=True, type=FiniteFloat(min=0))
@click.option(
    "--input-size", default=64, show_default=True, type=click.IntRange(min=32), help="Detector input (px)."
)
@click.option(
    "--max-aspect",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Long maps are drawn up to input-size x (input-size * max-aspect) px.",
)
@click.option(
    "--widths",
    default="8,16,32",
    show_default=True,
    help="Channels at strides 4, 8 and 16 (comma-separated).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@_descriptor_option("Frame descriptor whose maps (or library) the model is trained on.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda).")
@_friendly_errors
def train_spd_command(
    dataset: Path,
    out_dir: Path,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    learning_rate: float,
    input_size: int,
    max_aspect: int,
    widths: str,
    seed: int,
    resume: bool,
    descriptor_name: str | None,
    device: str,
) -> None:
    """Train the SPD copy detector on DATASET, a folder made by examples/make_benchmark.py (only
    its train split is read: unlabeled source videos and synthesised copies of them).

    Writes OUT/spd.pt (the weights of the epoch with the best validation segment F1, with their
    calibrated score threshold), OUT/spd.onnx (the same, as queries run it), OUT/last.pt
    (checkpoint for --resume), OUT/train-log.jsonl. Use the weights with
    `vcopy query --spd-weights OUT/spd.onnx`.
    """
    from vcopy.groundtruth import GROUND_TRUTH

    gt_path = dataset / GROUND_TRUTH if dataset.is_dir() else dataset
    if not gt_path.is_file():
        raise click.BadParameter(f"{gt_path}: no ground truth (make one with examples/make_benchmark.py)")
    try:
        width_values = tuple(int(w) for w in widths.split(","))
    except ValueError:
        width_values = ()
    if len(width_values) != 3 or min(width_values) < 1:
        raise click.BadParameter("three positive integers, e.g. 8,16,32", param_hint="--widths")
    _check_device(device)
    from vcopy.features import DEFAULT_DESCRIPTOR
    from vcopy.localize.spd_train import EpochLog, TrainConfig, train_spd

    config = TrainConfig(
        input_size=input_size,
        max_aspect=max_aspect,
        widths=width_values,  # type: ignore[arg-type]
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        descriptor=descriptor_name or DEFAULT_DESCRIPTOR,
        device=device,
    )
    with _training_progress(epochs * steps_per_epoch) as (on_video, on_step):

        def on_epoch(log: EpochLog) -> None:
            v = log.validation
            _note(
                f"epoch {log.epoch}: loss {_losses_text(log.loss)} "
                f"| validation segment F1 {v['segment_f1']:.3f} "
                f"(P {v['segment_precision']:.3f} R {v['segment_recall']:.3f}), video P "
                f"{v['video_precision']:.3f} R {v['video_recall']:.3f} at score >= {log.score_threshold:.2f} "
                f"| {log.seconds:.0f} s"
            )

        best = train_spd(
            gt_path,
            out_dir,
            config,
            resume=resume,
            command=" ".join(["vcopy", *sys.argv[1:]]),
            on_video=on_video,
            on_step=on_step,
            on_epoch=on_epoch,
        )
    stderr.print(f"best weights: {printable(best)}")


@train_group.command("copy")
@click.argument("dataset", type=click.Path(path_type=Path, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--epochs", default=12, show_default=True, type=click.IntRange(min=1))
@click.option("--steps-per-epoch", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--key-rate",
    default=0.2,
    show_default=True,
    type=FiniteFloat(min=0.01, max=1),
    help="Share of sampled frames to keep as key frames (the budget).",
)
@click.option(
    "--uniform-period",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="One frame in this many is always kept (the uniform mask).",
)
@click.option(
    "--frozen-spd",
    is_flag=True,
    help="Train the key frames alone, against the initial SPD weights (SKE as a separate stage).",
)
@click.option(
    "--init-spd",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="SPD weights (.pt) to start from [default: the shipped ones for the descriptor].",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@_descriptor_option("Frame descriptor whose maps the models are trained on.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda).")
@_friendly_errors
def train_copy_command(
    dataset: Path,
    out_dir: Path,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    key_rate: float,
    uniform_period: int,
    frozen_spd: bool,
    init_spd: Path | None,
    seed: int,
    resume: bool,
    descriptor_name: str | None,
    device: str,
) -> None:
    """Train learned key frames (SKE) jointly with the SPD copy detector on DATASET, a folder made
    by examples/make_benchmark.py (only its train split is read).

    Writes OUT/ske.onnx and OUT/spd.onnx (with .pt beside them: the epoch with the best validation
    segment F1, key frames on both sides), OUT/last.pt (checkpoint for --resume) and
    OUT/train-log.jsonl (loss, kept share and validation per epoch).
    """
    from vcopy.groundtruth import GROUND_TRUTH

    gt_path = dataset / GROUND_TRUTH if dataset.is_dir() else dataset
    if not gt_path.is_file():
        raise click.BadParameter(f"{gt_path}: no ground truth (make one with examples/make_benchmark.py)")
    _check_device(device)
    from vcopy.features import DEFAULT_DESCRIPTOR
    from vcopy.keyframes.train import CopyEpochLog, CopyTrainConfig, train_copy
    from vcopy.localize.spd_train import TrainConfig

    config = CopyTrainConfig(
        spd=TrainConfig(
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            batch_size=batch_size,
            seed=seed,
            descriptor=descriptor_name or DEFAULT_DESCRIPTOR,
            device=device,
        ),
        init_spd=init_spd,
        key_rate=key_rate,
        uniform_period=uniform_period,
        frozen_spd=frozen_spd,
    )
    with _training_progress(epochs * steps_per_epoch) as (on_video, on_step):

        def on_epoch(log: CopyEpochLog) -> None:
            v = log.validation
            _note(
                f"epoch {log.epoch}: loss {_losses_text(log.loss)}, kept {log.key_rate:.3f} "
                f"| validation segment F1 {v['segment_f1']:.3f} (P {v['segment_precision']:.3f} "
                f"R {v['segment_recall']:.3f}), kept {log.validation_key_rate:.3f} of frames, at score >= "
                f"{log.score_threshold:.2f} | {log.seconds:.0f} s"
            )

        best = train_copy(
            gt_path,
            out_dir,
            config,
            resume=resume,
            command=" ".join(["vcopy", *sys.argv[1:]]),
            on_video=on_video,
            on_step=on_step,
            on_epoch=on_epoch,
        )
    stderr.print(f"best weights: {printable(best)} (and {printable(best.parent / 'spd.onnx')})")


@train_group.command("text")
@click.option(
    "--captions",
    "captions_file",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="MSR-VTT JSON, CSV/TSV (video and caption columns) or JSONL ({video, caption}).",
)
@click.option(
    "--videos",
    "videos_dir",
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Folder of the captioned videos.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option(
    "--library",
    "library_path",
    type=click.Path(path_type=Path),
    help="Library to index the videos into and read their frames from (default: OUT/library).",
)
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=2))
@click.option("--lr", "learning_rate", default=1e-3, show_default=True, type=FiniteFloat(min=0))
@click.option(
    "--video-encoder",
    type=click.Choice(["mean", "transformer"]),
    default="mean",
    show_default=True,
    help="Mean pooling of frames, or one temporal transformer layer before it.",
)
@click.option(
    "--text-head/--no-text-head", default=True, show_default=True, help="Learn a correction on top of MiniLM."
)
@click.option(
    "--layouts/--no-layouts",
    default=True,
    show_default=True,
    help="Read each frame's layout and its change (where things are, which way they move).",
)
@click.option(
    "--temperature",
    type=FiniteFloat(min=1e-3, max=1.0),
    help="Fixed InfoNCE temperature (default: learned, starting at 0.05).",
)
@click.option("--negnce/--no-negnce", default=False, show_default=True, help="Negative-aware InfoNCE term.")
@click.option("--negnce-r2", default=0.5, show_default=True, type=FiniteFloat(min=0))
@click.option("--dmae/--no-dmae", default=False, show_default=True, help="Word x frame term (DMAE).")
@click.option(
    "--tpm/--no-tpm", default=False, show_default=True, help="Triplet partial-margin term (TPM-CL)."
)
@click.option("--hscl/--no-hscl", default=False, show_default=True, help="Hard-sample curriculum (HSCL).")
@click.option(
    "--neighbour-batches",
    is_flag=True,
    help="Batch each video with the videos whose captions read most like its own (hard negatives).",
)
@click.option("--validation-fraction", default=0.2, show_default=True, type=FiniteFloat(0.05, 0.5))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@_descriptor_option("Frame descriptor whose maps (or library) the model is trained on.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda).")
@_friendly_errors
def train_text_command(
    captions_file: Path,
    videos_dir: Path,
    out_dir: Path,
    library_path: Path | None,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    video_encoder: str,
    text_head: bool,
    layouts: bool,
    temperature: float | None,
    negnce: bool,
    negnce_r2: float,
    dmae: bool,
    tpm: bool,
    hscl: bool,
    neighbour_batches: bool,
    validation_fraction: float,
    seed: int,
    resume: bool,
    descriptor_name: str | None,
    device: str,
) -> None:
    """Train the text-to-video model on captioned videos (several captions per video welcome).

    The videos are indexed into a library (unchanged ones are not decoded again). Writes
    OUT/text-model.pt (the epoch with the best held-out R@sum), OUT/last.pt (for --resume) and
    OUT/train-log.jsonl. Search with it: `vcopy search-text TEXT --library LIB --model
    OUT/text-model.pt` (LIB built with the same descriptor).
    """
    _check_device(device)
    from vcopy.text.train import TextEpochLog, TextTrainConfig, prepare_data, read_checkpoint, train_text

    config = TextTrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        temporal=video_encoder == "transformer",
        text_head=text_head,
        layouts=layouts,
        temperature=temperature,
        negnce=negnce,
        negnce_r2=negnce_r2,
        dmae=dmae,
        tpm=tpm,
        hscl=hscl,
        caption_neighbour_batches=neighbour_batches,
        validation_fraction=validation_fraction,
        seed=seed,
        descriptor=_library_descriptor(library_path or out_dir / "library", descriptor_name),
        device=device,
    )
    if resume and (out_dir / "last.pt").is_file():
        read_checkpoint(out_dir / "last.pt", config)  # a bad checkpoint is refused before any work
    library_root = library_path or out_dir / "library"
    with _progress() as progress:
        videos = progress.add_task("indexing videos", total=None, current="")
        prepared = prepare_data(
            captions_file, videos_dir, library_root, config, _video_reporter(progress, videos)
        )
    if prepared.missing:
        _note(
            f"note: {len(prepared.missing)} captioned videos have no file in {printable(videos_dir)} "
            f"(e.g. {printable(prepared.missing[0])})"
        )
    data = prepared.data
    _note(
        f"{len(data.paths)} videos ({len(data.train_videos)} train, {len(data.held_out_videos)} held out), "
        f"{len(data.caption_texts)} captions; losses {config.losses}"
    )
    record = {
        "descriptor": prepared.descriptor,
        "text_encoder_sha256": prepared.text_encoder_sha256,
        "command": " ".join(["vcopy", *sys.argv[1:]]),
        "captions": str(captions_file),
    }
    with _progress() as progress:
        training = progress.add_task("training", total=None, current="")

        def on_step(step: int, total: int) -> None:
            progress.update(training, completed=step, total=total)

        def on_epoch(log: TextEpochLog) -> None:
            v = log.validation
            _note(
                f"epoch {log.epoch}: loss {_losses_text(log.loss)} | held out "
                f"R@1 {v['r1']:.1f} R@5 {v['r5']:.1f} R@10 {v['r10']:.1f} R@sum {v['rsum']:.1f} "
                f"medR {v['median_rank']:g} meanR {v['mean_rank']:.1f} | {log.seconds:.1f} s"
            )

        best, metrics = train_text(data, out_dir, config, record, resume, on_step, on_epoch)
    stderr.print(
        f"best weights: {printable(best)} (held out R@1 {metrics.r1:.1f} R@5 {metrics.r5:.1f} "
        f"R@10 {metrics.r10:.1f} R@sum {metrics.rsum:.1f})",
        soft_wrap=True,
    )


def _add_verbosity(group: click.Group) -> None:
    """Every subcommand takes ``-q`` / ``-v`` too."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _add_verbosity(command)
        else:
            command.params.extend(_verbosity_options())


_add_verbosity(cli)


def main() -> None:
    """The ``vcopy`` entry point. Click's own messages (usage errors) are printed here, as text
    with control characters escaped, like every other message."""
    try:
        cli.main(prog_name="vcopy", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        _fail("aborted", 1)
    except click.ClickException as exc:
        context = getattr(exc, "ctx", None)
        if context is not None:
            click.echo(context.get_usage(), err=True)
            if context.command.get_help_option(context) is not None:
                click.echo(f"Try '{context.command_path} --help' for help.", err=True)
            click.echo(err=True)
        click.echo(f"Error: {printable(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
