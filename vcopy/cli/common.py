"""What every ``vcopy`` command shares: exit codes, messages, progress, option machinery."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from vcopy.errors import VcopyError
from vcopy.video import SamplingConfig

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
INPUT_PATHS = click.Path(path_type=Path, readable=False)


def printable(value: object) -> str:
    """``value`` as one line of plain text: control and format characters (ESC, newlines, bidi
    overrides) and undecodable bytes of a file name escaped, so that no name can move the cursor,
    retitle the terminal or forge a table row."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape", "backslashreplace").decode()
        for ch in str(value)
    )


def fail(message: str, code: int = EXIT_CANNOT_RUN) -> None:
    stderr.print(Text.assemble(("vcopy: error:", "bold red"), " ", printable(message)), soft_wrap=True)
    sys.exit(code)


def about(path: object, message: str, style: str = "red") -> Text:
    """``PATH: message`` for stderr (a failure in red unless ``style`` says otherwise), as text."""
    return Text.assemble((printable(path), style), ": ", printable(message))


class FiniteFloat(click.FloatRange):
    """A float option in a range that also refuses NaN and infinities (NaN passes any range)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{printable(value)!r} is not a finite number.", param, ctx)
        return number


def friendly_errors[F: Callable[..., Any]](command: F) -> F:
    """Expected failures become one line on stderr and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise  # usage errors: click prints them and exits with 2
        except VcopyError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as exc:
            if os.environ.get("VCOPY_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set VCOPY_DEBUG=1 for the traceback)")

    return wrapper  # type: ignore[return-value]


@dataclass
class CliState:
    """What options of the whole command line set: the click context's object, shared by a group
    and its subcommands (``-q`` / ``-v`` go before the subcommand or after it)."""

    verbosity: int = 1  # 0 with -q (results and problems only), 2 with -v (every file's outcome)
    verbosity_given: bool = False


def state() -> CliState:
    """The running command's state (the defaults outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.ensure_object(CliState) if ctx is not None else CliState()


def note(message: str | Text) -> None:
    """Progress-like information on stderr (not with -q)."""
    if state().verbosity >= 1:
        stderr.print(message, soft_wrap=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", style="dim", markup=False),
        console=stderr,
        transient=True,
        disable=state().verbosity < 1,
    )


def video_reporter(progress: Progress, task: TaskID) -> Callable[[str, str], None]:
    """An ``on_video(path, outcome)`` for ``index_videos``: advances ``task`` and prints failures
    and warnings."""

    def on_video(path: str, outcome: str) -> None:
        kind, _, detail = outcome.partition(": ")
        if kind == "warning":
            progress.console.print(about(path, f"warning: {detail}", "yellow"), soft_wrap=True)
            return
        progress.advance(task)
        progress.update(task, current=printable(Path(path).name))
        if kind == "failed":
            progress.console.print(about(path, detail), soft_wrap=True)
        elif state().verbosity >= 2:
            progress.console.print(about(path, kind, "green"), soft_wrap=True)

    return on_video


def hms(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}"


def results_console(json_destination: str | None) -> Console:
    """Where tables go: stdout, or stderr when the JSON goes to stdout (``--json -``); wide when
    not a terminal, so that paths are not folded in logs."""
    to_stderr = json_destination == "-"
    stream = sys.stderr if to_stderr else sys.stdout
    width = None if stream.isatty() else 1000  # a log or a pipe: no path folded, whatever its length
    return Console(stderr=to_stderr, width=width, markup=False, highlight=False)


def decoding_options[F: Callable[..., Any]](command: F) -> F:
    """--device and --decode-timeout, shared by every command that decodes and describes videos."""
    command = click.option(
        "--decode-timeout",
        default=SamplingConfig.stall_timeout_s,
        show_default=True,
        type=FiniteFloat(min=1, max=86_400),
        help="Seconds a decoder may go without producing a frame before it is killed.",
    )(command)
    return click.option(
        "--device", default="cpu", show_default=True, help="Torch device for the descriptor (cpu, cuda)."
    )(command)


def ray_options[F: Callable[..., Any]](command: F) -> F:
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


def open_ray_session(address: str | None, workers: int | None, device: str) -> Any:
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


existing_library = click.option(
    "--library",
    "library_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Library folder made by `vcopy index`.",
)


def config_option(defaults: object, name: str, *flags: str, **click_options: Any) -> Callable[[F], F]:
    """A click option for field ``name`` of the config dataclass instance ``defaults``: its default
    is the field's value there (a flag pair for a bool, ``nargs`` for a tuple), its type follows the
    value's (integers at least 1, finite floats at least 0) unless ``type`` is given, and its flag is
    ``--field-name`` unless ``flags`` are."""
    default = getattr(defaults, name)
    flag = flags[0] if flags else f"--{name.replace('_', '-')}"
    if isinstance(default, bool):
        if not default:
            return click.option(flag, name, is_flag=True, **click_options)
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=True, show_default=True, **click_options)
    if isinstance(default, tuple):
        click_options.setdefault("nargs", len(default))
        click_options.setdefault("type", click.IntRange(min=1))
    elif isinstance(default, int):
        click_options.setdefault("type", click.IntRange(min=1))
    elif isinstance(default, float):
        click_options.setdefault("type", FiniteFloat(min=0))
    return click.option(flag, name, default=default, show_default=default is not None, **click_options)


def descriptor_option(help_text: str) -> Callable[[F], F]:
    from vcopy.features import DEFAULT_DESCRIPTOR, DESCRIPTORS

    return click.option(
        "--descriptor",
        "descriptor_name",
        default=None,
        type=click.Choice(sorted(DESCRIPTORS)),
        help=f"{help_text} [default: {DEFAULT_DESCRIPTOR}]",
    )


def keyframer_names() -> list[str]:
    from vcopy.keyframes import KEYFRAMERS

    return sorted(KEYFRAMERS)


def library_descriptor(library_path: Path, requested: str | None) -> str:
    """The registry name of the descriptor to index with: the one an existing library records (a
    different request is a usage error), else ``requested`` or the default."""
    from vcopy.features import DEFAULT_DESCRIPTOR, descriptor_kind

    return library_setting(library_path, "descriptor", requested, DEFAULT_DESCRIPTOR, descriptor_kind)


def library_keyframes(library_path: Path, requested: str | None) -> str:
    """The registry name of the key-framer to index with, as ``library_descriptor`` decides."""
    from vcopy.keyframes import DEFAULT_KEYFRAMES, keyframer_kind

    return library_setting(library_path, "keyframes", requested, DEFAULT_KEYFRAMES, keyframer_kind)


def library_setting(
    library_path: Path, key: str, requested: str | None, default: str, kind: Callable[[str], str]
) -> str:
    from vcopy.library_db import recorded_settings

    recorded = recorded_settings(library_path)
    if recorded is None:
        return requested or default
    built = kind(recorded.get(key, default))
    if requested is not None and built != requested:
        if key == "text_features":
            raise click.UsageError(
                f"{printable(library_path)} was built with text features; --no-text applies to a new library"
            )
        what, other = ("key frames", "other key frames") if key == "keyframes" else (key, f"another {key}")
        raise click.UsageError(
            f"{printable(library_path)} was built with {what} {built}, not {requested}; index into a "
            f"new library to use {other}"
        )
    return built


def parse_views(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """--views: names of vcopy.features.views, checked before any work."""
    from vcopy.features.views import VIEWS

    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip() and v.strip() != "none")
    unknown = [n for n in names if n not in VIEWS]
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r}: choose from {', '.join(VIEWS)} (or none)")
    return names


def checked_json_destination(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--json FILE``, checked before any work: a new name or a regular file, in a folder where a
    file can be made (never a device node, FIFO or symbolic link, which the report would replace)."""
    from vcopy.files import output_file_problem

    if value is None or value == "-":
        return value
    problem = output_file_problem(Path(value))
    if problem:
        raise click.BadParameter(f"{printable(value)}: {problem}", ctx, param)
    return value


def checked_output_folder(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
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


json_output = click.option(
    "--json",
    "json_destination",
    metavar="FILE|-",
    callback=checked_json_destination,
    help="Write the JSON to FILE, or to stdout with '-' (tables then go to stderr).",
)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``-q`` / ``-v``, before the subcommand (``vcopy -q query``) or after it (``vcopy query -q``)."""
    if value:
        level = 0 if param.name == "quiet" else 2
        given = ctx.ensure_object(CliState)
        if given.verbosity_given and given.verbosity != level:
            raise click.UsageError("-q and -v contradict each other", ctx)
        given.verbosity, given.verbosity_given = level, True
    return value


def verbosity_options() -> list[click.Parameter]:
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


def skipped_file(path: Path) -> None:
    """With -v, a file of a searched folder that is not taken as a video is named."""
    if state().verbosity >= 2:
        stderr.print(about(path, "skipped (not a video file name)", "dim"), soft_wrap=True)


def counted(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check_device(device: str, training: bool = False) -> None:
    """``--device`` is cpu, or cuda[:N] with a GPU that what runs on it can use: ONNX Runtime's
    CUDA provider (index, query, search), or torch's (``training``). Checked before any model is
    loaded."""
    if device == "cpu":
        return
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise click.BadParameter(
            f"{printable(device)!r} is not a device vcopy runs on (cpu, cuda, cuda:N)", param_hint="--device"
        )
    if training:
        import torch

        if not torch.cuda.is_available():
            raise click.BadParameter(
                f"{printable(device)}: no CUDA GPU is visible here", param_hint="--device"
            )
        return
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise click.BadParameter(
            f"{printable(device)}: this ONNX Runtime has no CUDA support (pip install onnxruntime-gpu)",
            param_hint="--device",
        )


def listed(paths: tuple[Path, ...]) -> str:
    shown = ", ".join(printable(p) for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
