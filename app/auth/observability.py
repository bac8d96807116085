"""Prometheus counters of the admin API: requests by route template and status, and authentication failures."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class AuthMetrics:
    """Counters with bounded labels only: route templates, methods, statuses and failure reasons."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.admin_requests = Counter(
            "hookledger_admin_requests",
            "Admin API requests by route template, method and response status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "hookledger_auth_failures",
            "Rejected admin requests by reason (missing_token, expired, bad_audience, insufficient_scope, ...).",
            ["reason"],
            registry=registry,
        )
