"""The log filter cuts URL queries out of messages and tracebacks (issue 13, item 11)."""

from __future__ import annotations

import io
import logging

from everloop.logs import UrlQueryFilter, strip_url_queries


def test_queries_and_fragments_are_cut_from_every_url() -> None:
    text = "GET https://h.example/a/b?key=s3cret&x=1#frag and wss://w.example:8443/s?t=1 done"
    assert strip_url_queries(text) == "GET https://h.example/a/b and wss://w.example:8443/s done"
    assert strip_url_queries("'http://h/p?k=v'") == "'http://h/p'"
    assert strip_url_queries("no url? here#") == "no url? here#"


def test_a_tracebacks_urls_lose_their_queries_too() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(UrlQueryFilter())
    logger = logging.getLogger("everloop.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("fetching http://h.example/x?token=s3cret failed")
        except RuntimeError:
            logger.exception("call to %s failed", "https://api.example/v1?api_key=s3cret")
    finally:
        logger.removeHandler(handler)
    written = out.getvalue()
    assert "call to https://api.example/v1 failed" in written
    assert "fetching http://h.example/x failed" in written
    assert "s3cret" not in written


def test_the_json_format_cuts_queries_and_carries_the_fields() -> None:
    import json

    from everloop.logs import JsonFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(UrlQueryFilter())
    logger = logging.getLogger("everloop.test_logs_json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("fetching http://h.example/x?token=s3cret failed")
        except RuntimeError:
            logger.exception(
                "call to %s failed",
                "https://api.example/v1?api_key=s3cret",
                extra={"fields": {"route": "/api/v1/x/{id}", "status": 502}},
            )
    finally:
        logger.removeHandler(handler)
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "call to https://api.example/v1 failed"
    assert record["level"] == "ERROR" and record["logger"] == "everloop.test_logs_json"
    assert record["route"] == "/api/v1/x/{id}" and record["status"] == 502
    assert "fetching http://h.example/x failed" in record["exception"]
    assert "s3cret" not in line


def test_alembic_lines_become_one_summary() -> None:
    from everloop.logs import MigrationSummary

    summary = MigrationSummary()
    assert summary.text == "up to date"
    lines = [
        "Context impl SQLiteImpl.",
        "Running upgrade  -> 0001, initial schema",
        "Running upgrade 0005, 0006 -> 0011, merge the feature branches",
        "Running upgrade 0027_memories -> 0028_health_checks, Agent health checks",
    ]
    kept = [
        summary.filter(logging.LogRecord("alembic", logging.INFO, "", 0, text, None, None))
        for text in lines
    ]
    assert kept == [False] * 4
    assert summary.text == "3 applied, now at 0028_health_checks"
    warning = logging.LogRecord("alembic", logging.WARNING, "", 0, "odd", None, None)
    assert summary.filter(warning) is True


def test_the_server_commands_take_a_log_format() -> None:
    from typer.testing import CliRunner

    from everloop.cli.main import app

    for command in ("serve", "api", "worker"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "--log-format" in result.output and "json" in result.output
    refused = CliRunner().invoke(app, ["serve", "--log-format", "xml"])
    assert refused.exit_code == 2
