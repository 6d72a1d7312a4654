"""The CLI surface: --help/--version, an example in every command's help, a fast start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from tinykeras import __version__
from tinykeras.cli import COMMANDS, cli


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_help_shows_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`tinykeras {name} --help` shows no example"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_does_not_import_tensorflow(name: str) -> None:
    code = (
        "import sys; from click.testing import CliRunner; from tinykeras.cli import cli; "
        f"r = CliRunner().invoke(cli, [{name!r}, '--help']); assert r.exit_code == 0, r.output; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["flash-it"])
    assert result.exit_code == 2 and "No such command" in result.output
