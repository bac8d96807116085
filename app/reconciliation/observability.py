"""Prometheus metrics of reconciliation runs."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReconciliationMetrics:
    """Runs by outcome, rows written and retracted, bytes scanned, and the newest settled window."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "hookledger_reconciliation_runs",
            "Finished reconciliation runs by source and status (succeeded, failed).",
            ["source", "status"],
            registry=registry,
        )
        self.gaps_filled = Counter(
            "hookledger_reconciliation_gaps_filled",
            "Ledger rows inserted from logs because no push reported the fact.",
            ["source"],
            registry=registry,
        )
        self.rows_retracted = Counter(
            "hookledger_reconciliation_rows_retracted",
            "Reconciliation rows deleted because a late push reported the same fact.",
            ["source"],
            registry=registry,
        )
        self.bytes_scanned = Counter(
            "hookledger_reconciliation_scanned_bytes",
            "Bytes the log query engine reported as scanned.",
            ["source"],
            registry=registry,
        )
        self.last_success = Gauge(
            "hookledger_reconciliation_last_success_window_end_seconds",
            "Unix time of the end of the newest window reconciled successfully, per source.",
            ["source"],
            registry=registry,
        )
        self._newest_end: dict[str, float] = {}

    def record_success(
        self, source: str, *, gaps_filled: int, rows_retracted: int, bytes_scanned: int | None, window_end: datetime
    ) -> None:
        self.runs.labels(source=source, status="succeeded").inc()
        self.gaps_filled.labels(source=source).inc(gaps_filled)
        self.rows_retracted.labels(source=source).inc(rows_retracted)
        if bytes_scanned:
            self.bytes_scanned.labels(source=source).inc(bytes_scanned)
        # A re-run of an older window must not move the gauge back.
        newest = max(self._newest_end.get(source, 0.0), window_end.timestamp())
        self._newest_end[source] = newest
        self.last_success.labels(source=source).set(newest)

    def record_failure(self, source: str) -> None:
        self.runs.labels(source=source, status="failed").inc()
