"""``vcopy library``: look after a library."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vcopy.cli.common import (
    EXIT_CANNOT_RUN,
    EXIT_OK,
    EXIT_SOME_FAILED,
    about,
    counted,
    friendly_errors,
    printable,
    stderr,
)


@click.group("library")
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
@friendly_errors
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
@friendly_errors
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
@friendly_errors
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
        stderr.print(about(path, "not in the library"), soft_wrap=True)
    click.echo(f"removed {counted(len(doomed), 'video', 'videos')}")
    sys.exit(EXIT_SOME_FAILED if missing else EXIT_OK)


@library_group.command("verify")
@_library_argument
@friendly_errors
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
    click.echo(f"ok: {counted(count, 'video', 'videos')}, every file as recorded")


@library_group.command("rebuild-index")
@_library_argument
@click.option(
    "--spec",
    default=None,
    help="FAISS index_factory string (Flat, IVF4096,PQ64, IVF1024,Flat, ...; ';nprobe=N' to set "
    "nprobe) or auto [default: the library's own, auto for a new library].",
)
@friendly_errors
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
@friendly_errors
def library_upgrade_command(library_path: Path) -> None:
    """Convert a library made by an older vcopy to this one's layout, in place (vectors kept)."""
    from vcopy.library import Library
    from vcopy.library_db import SCHEMA_VERSION

    with Library.open(library_path, write=True) as library:
        videos = counted(len(library), "video", "videos")
        click.echo(f"{printable(library.root)}: library schema {SCHEMA_VERSION}, {videos}")
