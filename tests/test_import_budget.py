"""What start-up imports: the heavy packages stay out of the paths that must be quick.

``everloop serve`` answers /healthz, and ``everloop token create`` finishes, before anything
below is imported; the model and MCP SDKs load on first use (a server warms them after start).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("openai", "anthropic", "mcp", "dbos", "alembic", "fastapi")


def _imported_after(*modules: str) -> set[str]:
    """Which of HEAVY (and of our own big modules) a new interpreter has after the imports."""
    watched = (*HEAVY, "everloop.bootstrap", "everloop.api.app")
    code = (
        f"import sys, json; import {', '.join(modules)}; "
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_the_phase_before_binding_and_token_create_import_nothing_heavy() -> None:
    assert _imported_after("everloop.cli.main", "everloop.cli.serve") == set()


def test_the_services_leave_the_sdks_to_first_use() -> None:
    found = _imported_after("everloop.bootstrap", "everloop.api.app")
    assert found & {"openai", "anthropic", "mcp"} == set()
