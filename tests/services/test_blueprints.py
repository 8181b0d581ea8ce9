"""Blueprints from YAML files: loaded beside the built-in ones; a bad file names itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from everloop.errors import InvalidInput
from everloop.services.blueprints import BlueprintError, BlueprintService, load_blueprints

KNOWN = {"current_time", "file_system"}

REVIEWER = """
id: code_reviewer
name: Code reviewer
description: Reviews one repository.
system_prompt: "You review {{config.repo}} ({{ config.strict }})."
capabilities: [{ref: file_system}]
max_iterations: 4
config_schema:
  type: object
  properties: {repo: {type: string}, strict: {type: boolean}}
  required: [repo]
"""


def test_yaml_blueprints_load_beside_the_built_in_ones(tmp_path: Path) -> None:
    (tmp_path / "reviewer.yaml").write_text(REVIEWER)
    (tmp_path / "notes.txt").write_text("ignored")
    service = BlueprintService(load_blueprints(tmp_path, KNOWN))
    assert [b.id for b in service.list()] == ["code_reviewer", "note_taker", "research_pack"]
    reviewer = service.get("code_reviewer")
    layer = reviewer.layer(
        service.validated_config("code_reviewer", {"repo": "a/b", "strict": True})
    )
    assert layer.system_prompt == "You review a/b (true)."
    assert layer.max_iterations == 4
    with pytest.raises(InvalidInput) as error:
        service.validated_config("code_reviewer", {"repo": 3})
    assert error.value.field == "blueprint_config.repo"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: x\nname: X\n", "'system_prompt' must be a non-empty string"),
        ("id: x\nname: X\nsystem_prompt: p\ncapabilities: [{ref: nope}]\n", "unknown capability"),
        ("id: x\nname: X\nsystem_prompt: p\nconfig_schema: {type: 3}\n", "not a valid JSON"),
        ("id: x\nname: X\nsystem_prompt: p\ncolour: red\n", "unknown keys"),
        ("id: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yml").write_text(text)
    with pytest.raises(BlueprintError, match=message) as error:
        load_blueprints(tmp_path, KNOWN)
    assert "bad.yml" in error.value.message


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError, match="does not exist"):
        load_blueprints(tmp_path / "nowhere", KNOWN)
