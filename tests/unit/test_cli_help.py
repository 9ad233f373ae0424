"""Every command's and action's ``--help`` says what it does, and takes only its own flags."""

from __future__ import annotations

import argparse

import pytest

from stockpipe.cli import main
from stockpipe.cli.parser import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(argv path, parser) of every command and action, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _commands(child, (*path, name))


COMMANDS = list(_commands(build_parser()))


@pytest.mark.parametrize("path,parser", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_each_help_opens_with_what_the_command_does(
    path: tuple[str, ...], parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: stockpipe {' '.join(path)}")
    assert parser.description and parser.description.split()[0] in out
    for flag in parser._actions:
        if flag.option_strings and flag.dest != "help":
            assert flag.help, f"stockpipe {' '.join(path)} {flag.option_strings[0]}: no help"


def test_the_actions_are_commands_of_their_own() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"kafka up", "monitoring down", "warehouse setup", "warehouse remove"} <= names
