"""The metrics docs/operations.md lists and docs/grafana-dashboard.json queries are the ones
``/metrics`` serves (issue 24): a renamed metric cannot leave a dead panel or table row."""

from __future__ import annotations

import json
import re
from pathlib import Path

from everloop.telemetry.metrics import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"\beverloop_[a-z_]+")


def served() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("everloop_"):
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def base(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


def test_the_operations_table_lists_every_metric() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `(everloop_[a-z_]+)` \|", text, re.MULTILINE)}
    assert rows == served()


def test_the_dashboard_queries_only_served_metrics() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        base(name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in NAME.findall(target["expr"])
    }
    assert queried <= served()
    assert len(queried) >= 15
