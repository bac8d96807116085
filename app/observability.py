"""Prometheus metrics of the ingest path; other packages register theirs on the same registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class IngestMetrics:
    """Deliveries by source and outcome, and the hook route's latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "hookledger_deliveries",
            "Hook deliveries by source and outcome (accepted, duplicate, or an error code).",
            ["source", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "hookledger_delivery_seconds",
            "Time from request start to response for hook deliveries.",
            ["source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
