"""``vcopy query``: check suspect videos against a library, render the matches."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.table import Table

from vcopy.cli.common import (
    EXIT_MATCH,
    EXIT_MATCH_AND_SOME_FAILED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    INPUT_PATHS,
    FiniteFloat,
    about,
    check_device,
    checked_output_folder,
    config_option,
    counted,
    decoding_options,
    existing_library,
    friendly_errors,
    hms,
    json_output,
    listed,
    note,
    open_ray_session,
    parse_views,
    printable,
    progress_bar,
    ray_options,
    results_console,
    skipped_file,
    state,
)
from vcopy.config import QueryConfig
from vcopy.errors import VcopyError
from vcopy.localize import LOCALIZERS

QUERY = QueryConfig()


@click.command("query")
@click.argument("paths", nargs=-1, required=True, type=INPUT_PATHS)
@existing_library
@json_output
@config_option(
    QUERY,
    "localizer",
    type=click.Choice(sorted(LOCALIZERS)),
    help="Localizer used on similarity maps: spd (the learned detector), tn (temporal network), "
    "dp (dynamic programming), hv (Hough voting), dtw (dynamic time warping).",
)
@config_option(
    QUERY,
    "spd_weights",
    type=click.Path(path_type=Path, dir_okay=False),
    help="SPD weights made by `vcopy train spd` (default: the weights shipped with vcopy).",
)
@config_option(
    QUERY, "candidates", help="Library videos per query that get a similarity map and localization."
)
@config_option(
    QUERY,
    "min_score",
    type=FiniteFloat(min=0, max=2),
    help="A pair is a match from this score [default: the localizer's threshold, calibrated on the "
    "benchmark's train split]. Weaker pairs are listed in the report's below_threshold.",
)
@config_option(
    QUERY,
    "query_fps",
    type=FiniteFloat(min=0, min_open=True),
    help="Frames per second sampled from suspects, a whole multiple of the library's; each map row "
    "is the best of the suspect frames of one library step [default: twice the library's rate].",
)
@click.option(
    "--views",
    default=None,
    callback=parse_views,
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
    callback=checked_output_folder,
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
@decoding_options
@ray_options
@friendly_errors
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
    query_fps: float | None,
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
    from vcopy.report import write_report
    from vcopy.video import find_videos

    if output_format != "table" and json_destination == "-":
        raise click.UsageError(f"--json - and --format {output_format} would both write to stdout")
    files = find_videos(paths, skipped_file)
    if not files:  # a cron job must not read "0 queries" as "no copies"
        raise click.UsageError(f"no video files in {listed(paths)}")
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    table_console = results_console(json_destination)
    ray_session = open_ray_session(ray_address, ray_workers, device)
    with Library.open(library_path) as library:
        check_device(device)
        from vcopy.features import create_descriptor
        from vcopy.query import CopyFinder, rows_per_library_frame

        try:
            rows_per_library_frame(query_fps, library.sampling.sample_fps)
        except VcopyError as exc:
            raise click.BadParameter(str(exc), param_hint="--query-fps") from None
        from vcopy.report import build_report, report_csv, report_vsc_csv

        config = QueryConfig(
            localizer=localizer,
            spd_weights=spd_weights,
            candidates=candidates,
            min_score=min_score,
            stall_timeout_s=decode_timeout,
            views=QUERY.views if views is None else views,
            query_fps=query_fps,
        )
        finder = CopyFinder(library, create_descriptor(library.meta["descriptor"], device), config)
        results = []
        with ray_session as ray, progress_bar() as progress:
            task = progress.add_task("querying", total=len(files), current="")
            for result in finder.query_many(files, ray):
                results.append(result)
                progress.advance(task)
                progress.update(task, current=printable(result.path.name))
                if not result.ok:
                    progress.console.print(about(result.path, str(result.error)), soft_wrap=True)
                for warning in result.warnings:
                    progress.console.print(
                        about(result.path, f"warning: {warning}", "yellow"), soft_wrap=True
                    )
                if result.ok and state().verbosity >= 2:
                    copied = counted(len(result.matches), "library video copied", "library videos copied")
                    progress.console.print(about(result.path, copied, "green"), soft_wrap=True)
        report = build_report(finder, results, started_utc)
        if evidence_dir is not None:
            from vcopy.evidence import EvidenceWriter

            writer = EvidenceWriter(library, finder.descriptor, config.background_rank, config.views)
            pages = writer.write(report, evidence_dir)
            note(f"{counted(len(pages), 'evidence page', 'evidence pages')} in {printable(evidence_dir)}")
    if output_format == "table":
        table_console.print(_results_table(results, finder.sampling.step_s))
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


def _span(
    start_s: float,
    end_s: float,
    start_range: tuple[float, float],
    end_range: tuple[float, float],
    step_s: float,
) -> str:
    """``start–end``, with ``(start ±X s, end ±Y s)`` for ends whose range a flat map widened."""
    from vcopy.localize.base import MARGIN_STEPS

    text = f"{hms(start_s)}–{hms(end_s)}"
    notes = []
    for name, at, (lo, hi) in (("start", start_s, start_range), ("end", end_s, end_range)):
        spread = max(at - lo, hi - at)
        if spread > (MARGIN_STEPS + 0.01) * step_s:  # widened by a flat map
            notes.append(f"{name} ±{spread:.1f} s")
    return f"{text} ({', '.join(notes)})" if notes else text


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
    queries = counted(len(results), "query", "queries")
    table.caption = f"{queries}: {n_match} with copies, {n_clean} without, {n_failed} failed"
    return table
