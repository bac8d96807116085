"""Errors of the reconciler.

Exception tree::

    HookledgerError (app.errors)
    ├── NotFoundError
    │   ├── UnknownSourceError              404 unknown_source
    │   └── RunNotFoundError                404 run_not_found
    └── UnprocessableError
        ├── ReconciliationNotConfiguredError 422 reconciliation_not_configured
        └── InvalidWindowError              422 invalid_window
    ReconciliationError                     a run failed (stored on the run, not sent over HTTP)
    ├── LeaseLostError                      another process took over the run's lease
    └── LogOrderError                       the engine returned records out of subject order
"""

from __future__ import annotations

from app.errors import NotFoundError, UnprocessableError


class UnknownSourceError(NotFoundError):
    code = "unknown_source"


class RunNotFoundError(NotFoundError):
    code = "run_not_found"


class ReconciliationNotConfiguredError(UnprocessableError):
    code = "reconciliation_not_configured"


class InvalidWindowError(UnprocessableError):
    code = "invalid_window"


class ReconciliationError(Exception):
    """A run could not finish; the message is stored as the run's error."""


class LeaseLostError(ReconciliationError):
    """The run's lease expired and another process took the run over."""


class LogOrderError(ReconciliationError):
    """The query engine broke the `subject, occurred_at, log_id` order that the merge join needs."""
