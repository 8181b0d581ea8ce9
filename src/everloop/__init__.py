"""everloop: a durable agentic harness engine."""

__version__ = "0.1.0"
