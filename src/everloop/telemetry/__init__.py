"""Observability: OpenTelemetry traces of turns, Prometheus metrics, and the turn log line.

A leaf package (it imports nothing else of everloop), so every layer may report through it:
the engine marks a turn's phases, model calls and tool calls (``telemetry.turns``), the store
times its transactions, the API its requests. ``tracing`` holds the tracer (none unless an
exporter is configured: then each hook costs a flag check), ``metrics`` the process's
Prometheus registry.
"""
