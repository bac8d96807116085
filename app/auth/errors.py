"""Authentication failures with the reason each one is counted and reported under."""

from __future__ import annotations

from app.errors import AuthenticationError, HookledgerError


def _quoted(text: str) -> str:
    """Make `text` safe inside a quoted-string of a WWW-Authenticate parameter."""
    return text.replace("\\", "").replace('"', "'")


def invalid_token(reason: str, detail: str) -> AuthenticationError:
    """Build the 401 for a bearer token that failed verification; `reason` names the check."""
    challenge = f'Bearer realm="hookledger", error="invalid_token", error_description="{_quoted(detail)}"'
    return AuthenticationError(detail, code="invalid_token", headers={"WWW-Authenticate": challenge}, reason=reason)


class KeySetUnavailableError(HookledgerError):
    """The issuer's JWKS could not be fetched, so no JWT can be verified now."""

    status, code, title = 503, "jwks_unavailable", "Service unavailable"
