"""The ``vcopy`` command: a thin layer that parses options, calls the Python API and renders
results. One module per command family owns its options and rendering; ``common`` holds what they
share (exit codes, messages, progress, option machinery, the ``CliState`` context object)."""

from __future__ import annotations

import sys

import click

import vcopy
from vcopy.cli.common import CliState, fail, printable, verbosity_options
from vcopy.cli.index import index_command
from vcopy.cli.library import library_group
from vcopy.cli.query import query_command
from vcopy.cli.reports import eval_command, evidence_command
from vcopy.cli.search import search_text_command
from vcopy.cli.train import train_group

__all__ = ["cli", "index_command", "main", "printable", "query_command"]


@click.group(params=verbosity_options())
@click.version_option(vcopy.__version__, prog_name="vcopy")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Find copies of videos: index a library of your videos, then check suspect videos against it."""
    ctx.ensure_object(CliState)  # shared with the subcommand, whose -q / -v may still set it


for _command in (
    index_command,
    search_text_command,
    query_command,
    evidence_command,
    eval_command,
    library_group,
    train_group,
):
    cli.add_command(_command)


def _add_verbosity(group: click.Group) -> None:
    """Every subcommand takes ``-q`` / ``-v`` too."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _add_verbosity(command)
        else:
            command.params.extend(verbosity_options())


_add_verbosity(cli)


def main() -> None:
    """The ``vcopy`` entry point. Click's own messages (usage errors) are printed here, as text
    with control characters escaped, like every other message."""
    try:
        cli.main(prog_name="vcopy", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        fail("aborted", 1)
    except click.ClickException as exc:
        context = getattr(exc, "ctx", None)
        if context is not None:
            click.echo(context.get_usage(), err=True)
            if context.command.get_help_option(context) is not None:
                click.echo(f"Try '{context.command_path} --help' for help.", err=True)
            click.echo(err=True)
        click.echo(f"Error: {printable(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
