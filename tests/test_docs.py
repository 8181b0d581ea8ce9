"""The README stays true to the code: every setting is documented, and the CLI explains itself."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from everloop.cli.main import app
from everloop.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    names = [
        field.validation_alias
        if isinstance(field.validation_alias, str)
        else f"EVERLOOP_{name.upper()}"
        for name, field in Settings.model_fields.items()
    ]
    missing = [name for name in names if f"`{name}`" not in readme]
    assert missing == []


def test_cli_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "token"):
        assert command in result.output
