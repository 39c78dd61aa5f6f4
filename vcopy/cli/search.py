"""``vcopy search-text``: rank library videos for a text query."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from vcopy.cli.common import (
    counted,
    existing_library,
    friendly_errors,
    hms,
    json_output,
    note,
    printable,
    results_console,
)


@click.command("search-text")
@click.argument("text", required=False)
@existing_library
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
    help="A model made by `vcopy train text` (OUT/text-model.onnx, or its .pt); default: zero-shot.",
)
@json_output
@friendly_errors
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
        note(
            f"note: {len(searcher.sync.not_searchable)} videos were indexed by an older vcopy without "
            "what text search reads; run `vcopy index` on them again to search them"
        )
    console = results_console(json_destination)
    for result in results:
        table = Table(title=printable(repr(result.text)), title_justify="left")
        for column in ("#", "score", "moment", "video"):
            table.add_column(column, justify="right" if column != "video" else "left")
        for rank, hit in enumerate(result.hits, 1):
            moment = f"{hms(hit.moment.start_s)}-{hms(hit.moment.end_s)}"
            table.add_row(str(rank), f"{hit.score:.3f}", moment, printable(hit.path))
        console.print(table)
    per_query_ms = seconds / len(texts) * 1000
    note(f"{counted(len(texts), 'query', 'queries')} in {seconds:.3f} s ({per_query_ms:.1f} ms per query)")
    if json_destination:
        write_report(report, json_destination)
