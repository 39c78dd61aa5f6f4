"""``vcopy evidence`` and ``vcopy eval``: pages and scores from a query report."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from vcopy.cli.common import (
    checked_json_destination,
    checked_output_folder,
    counted,
    friendly_errors,
    printable,
    results_console,
    stderr,
)


@click.command("evidence")
@click.argument(
    "report_path", metavar="REPORT.json", type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    callback=checked_output_folder,
    help="Folder for the pages (created if missing).",
)
@friendly_errors
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
        f"{counted(len(pages), 'evidence page', 'evidence pages')} and index.html in {printable(out_dir)}"
    )


@click.command("eval")
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
    callback=checked_json_destination,
    help="Write the scores as JSON (stdout with '-').",
)
@friendly_errors
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
    console = results_console(json_destination)
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
