"""The process's Prometheus metrics (served at ``GET /metrics``, ``services.observability``).

One registry per process, of this process's work: with workers, each process is a target and
dashboards sum over them. Labels are bounded: models and tools are what the organizations
configured, statuses and outcomes fixed sets, HTTP routes the route templates (never paths).
Gauges of state kept elsewhere (queued turns, SSE subscribers) are set when scraped.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TURN_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_DB_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

TURN_STATUSES = ("completed", "failed", "cancelled", "sealed")

TURNS_STARTED = Counter(
    "everloop_turns_started", "Turns this process started running.", registry=REGISTRY
)
TURNS_RESUMED = Counter(
    "everloop_turns_resumed",
    "Turns this process resumed after a crash or a stop (their work continued, not redone).",
    registry=REGISTRY,
)
TURNS_ENDED = Counter(
    "everloop_turns_ended",
    "Turns run in this process that ended, by status (completed, failed, cancelled, sealed "
    "by a budget, other: e.g. the session was deleted).",
    ["status"],
    registry=REGISTRY,
)
TURN_DURATION = Histogram(
    "everloop_turn_duration_seconds",
    "Wall time of a turn in this process, from its start (or resumption) to its end.",
    buckets=_TURN_SECONDS,
    registry=REGISTRY,
)
RUNNING_TURNS = Gauge(
    "everloop_running_turns", "Turns running in this process now.", registry=REGISTRY
)
QUEUED_TURNS = Gauge(
    "everloop_queued_turns",
    "Turns accepted and not yet running (every session of the instance).",
    registry=REGISTRY,
)
TURNS_RECOVERED = Counter(
    "everloop_turns_recovered",
    "Turns handed back to run: recorded but never started (at start-up), or pending on "
    "executors that died (by the reaper's leader).",
    registry=REGISTRY,
)
MODEL_CALL_DURATION = Histogram(
    "everloop_model_call_duration_seconds",
    "Duration of a model call (with its retries), by model and outcome (ok, error).",
    ["model", "outcome"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "everloop_time_to_first_token_seconds",
    "Time from a model call's start to its first streamed text, by model.",
    ["model"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
MODEL_TOKENS = Counter(
    "everloop_model_tokens",
    "Tokens of model calls as the providers report them, by model and kind (input, output).",
    ["model", "kind"],
    registry=REGISTRY,
)
TOOL_CALLS = Counter(
    "everloop_tool_calls",
    "Server-side tool calls, by tool and outcome (ok, error, halted: the turn stopped).",
    ["tool", "outcome"],
    registry=REGISTRY,
)
TOOL_DURATION = Histogram(
    "everloop_tool_call_duration_seconds",
    "Duration of a server-side tool call, by tool.",
    ["tool"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
SSE_SUBSCRIBERS = Gauge(
    "everloop_sse_subscribers", "Open event streams served by this process.", registry=REGISTRY
)
DB_TRANSACTION = Histogram(
    "everloop_db_transaction_seconds",
    "Time a transaction of the app database held its connection, by kind (read, write).",
    ["kind"],
    buckets=_DB_SECONDS,
    registry=REGISTRY,
)
BUDGET_BLOCKS = Counter(
    "everloop_budget_blocks",
    "Model calls not made because a budget of the session was exhausted.",
    registry=REGISTRY,
)
SCHEDULE_FIRINGS = Counter(
    "everloop_schedule_firings",
    "Schedules fired by this process, by outcome (fired, skipped).",
    ["outcome"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "everloop_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "everloop_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of its body), by method and route template.",
    ["method", "route"],
    buckets=_SECONDS,
    registry=REGISTRY,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def child(metric: Counter | Histogram | Gauge, *labels: str) -> Any:
    """``metric.labels(*labels)``, remembered: ``labels()`` validates and locks on every call,
    and the turn path asks for the same few children many times a second. Label sets are
    bounded (see above), so is this."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def turn_status(status: str) -> str:
    """The label of a turn's end: one of ``TURN_STATUSES`` or ``other``."""
    return status if status in TURN_STATUSES else "other"


def render() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)
