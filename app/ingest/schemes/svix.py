"""Svix: the Standard Webhooks scheme under its own registry name.

Svix sends `svix-id`, `svix-timestamp` and `svix-signature` unless the
account is white-labelled, and then the `webhook-*` names; both are accepted.
"""

from __future__ import annotations

from app.ingest.schemes.standard_webhooks import StandardWebhooksScheme


class SvixScheme(StandardWebhooksScheme):
    """Svix deliveries, verified exactly like Standard Webhooks."""

    name = "svix"
