"""The README stays true to the code: every setting is documented, and the CLI explains itself."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from everloop.bootstrap import Services
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


def test_every_built_in_tool_has_its_side_effect_class_in_the_architecture_table(
    services: Services,
) -> None:
    """docs/architecture.md, "Tool calls after a crash", names each tool with its class."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("### Tool calls after a crash", 1)[1].split("\n### ", 1)[0]
    documented: dict[str, str] = {}
    for row in section.splitlines():
        cells = row.split("|")
        if len(cells) > 3 and cells[2].strip().startswith("`"):
            for name in re.findall(r"`([a-z_]+)`", cells[1]):
                documented[name] = cells[2].strip().strip("`")
    declared = {
        tool.name: str(tool.side_effect)
        for capability in services.capabilities.all()
        for tool in capability.tools
    }
    assert documented == declared
