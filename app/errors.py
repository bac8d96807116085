"""One error shape for every failure: RFC 9457 `application/problem+json`.

Exception tree::

    HookledgerError                 rendered as problem+json with `status` and `code`
    ├── NotFoundError               404 (unknown_source, metric_not_found, run_not_found, ...)
    ├── BadRequestError             400 (missing_header, malformed_payload, ...)
    ├── UnprocessableError          422 (invalid_event, invalid_parameter, ...)
    ├── ConflictError               409 (idempotency_conflict)
    ├── PayloadTooLargeError        413 (payload_too_large)
    ├── UnsupportedMediaTypeError   415 (unsupported_content_encoding, unsupported_media_type)
    ├── AuthenticationError         401 with WWW-Authenticate
    ├── ForbiddenError              403 (insufficient_scope)
    ├── RequestTimeoutError         408 (body_timeout)
    └── StorageUnavailableError     503 with Retry-After (storage_unavailable)

Verification failures from the signature schemes (`VerificationError`) carry
their own status and code and are rendered the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ingest.schemes.base import VerificationError

PROBLEM_JSON = "application/problem+json"

log = structlog.get_logger("app.errors")


class HookledgerError(Exception):
    """Base of the service's errors; each maps to one HTTP status and a stable code."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})
        self.extra = extra


class NotFoundError(HookledgerError):
    status, code, title = 404, "not_found", "Not found"


class BadRequestError(HookledgerError):
    status, code, title = 400, "bad_request", "Bad request"


class UnprocessableError(HookledgerError):
    status, code, title = 422, "invalid_request", "Unprocessable content"


class ConflictError(HookledgerError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLargeError(HookledgerError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaTypeError(HookledgerError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class AuthenticationError(HookledgerError):
    status, code, title = 401, "invalid_token", "Unauthorized"


class ForbiddenError(HookledgerError):
    status, code, title = 403, "insufficient_scope", "Forbidden"


class RequestTimeoutError(HookledgerError):
    status, code, title = 408, "request_timeout", "Request timeout"


class StorageUnavailableError(HookledgerError):
    status, code, title = 503, "storage_unavailable", "Storage unavailable"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """Build a problem+json response with the stable `code` member."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "code": code, "detail": detail}
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    503: "Service unavailable",
}


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    sentences = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()))
        message = error.get("msg", "is invalid")
        errors.append({"location": location, "message": message, "type": error.get("type")})
        sentences.append(f"{location}: {message}")
    detail = "The request is invalid: " + "; ".join(sentences) + ". Correct these values and send it again."
    return detail, errors


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, FastAPI's own included, as problem+json."""

    @app.exception_handler(HookledgerError)
    async def _hookledger_error(request: Request, exc: HookledgerError) -> JSONResponse:
        headers = dict(exc.headers)
        if exc.status == 503 and "Retry-After" not in headers:
            state = getattr(request.app.state, "hookledger", None)
            headers["Retry-After"] = str(state.settings.retry_after_seconds if state else 5)
        return problem_response(
            exc.status, exc.code, exc.title, exc.detail, instance=request.url.path, headers=headers, extra=exc.extra
        )

    @app.exception_handler(VerificationError)
    async def _verification_error(request: Request, exc: VerificationError) -> JSONResponse:
        extra = {"header": exc.header} if exc.header else None
        return problem_response(
            exc.status, exc.code, _TITLES.get(exc.status, "Bad request"), exc.detail, instance=request.url.path, extra=extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        invalid_json = next((error for error in exc.errors() if error.get("type") == "json_invalid"), None)
        if invalid_json is not None:
            reason = (invalid_json.get("ctx") or {}).get("error", "invalid JSON")
            return problem_response(
                400,
                "malformed_payload",
                "Bad request",
                f"The request body is not valid JSON ({reason}); send a JSON object with Content-Type application/json.",
                instance=request.url.path,
            )
        detail, errors = _validation_detail(exc)
        return problem_response(
            422, "invalid_request", "Unprocessable content", detail, instance=request.url.path, extra={"errors": errors}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = str(exc.detail)
        if exc.status_code == 404:
            detail = f"No route matches {request.method} {request.url.path}; see /docs for the API."
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs for the allowed methods."
        return problem_response(
            exc.status_code,
            code,
            _TITLES.get(exc.status_code, "Error"),
            detail,
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )


INTERNAL_ERROR_DETAIL = (
    "The server failed while handling this request; it was logged. Retry later or report the request id."
)


class UnhandledErrorMiddleware:
    """Turn an unexpected exception into one logged 500 problem, and a client disconnect into one info line.

    Starlette's own server-error middleware re-raises after sending its
    response, so the server would log every failure a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            log.info("http.client_disconnected", path=scope.get("path"), method=scope.get("method"))
        except Exception as exc:
            # Imported here because app.db.errors imports this module.
            from app.db.errors import is_outage

            if is_outage(exc):
                # Routes that do not map outages themselves still respond 503, never 500.
                log.warning("db.unavailable", error=f"{type(exc).__name__}: {exc}"[:500], path=scope.get("path"))
                response = self._unavailable(scope)
            else:
                log.exception("http.unhandled_error", path=scope.get("path"), method=scope.get("method"))
                response = problem_response(
                    500, "internal_error", "Internal error", INTERNAL_ERROR_DETAIL, instance=scope.get("path")
                )
            if not response_started:
                await response(scope, receive, send)

    @staticmethod
    def _unavailable(scope: Scope) -> JSONResponse:
        app = scope.get("app")
        state = getattr(getattr(app, "state", None), "hookledger", None)
        retry_after = str(state.settings.retry_after_seconds if state else 5)
        return problem_response(
            503,
            "storage_unavailable",
            "Storage unavailable",
            f"The database is unavailable; nothing was changed. Retry after {retry_after} seconds.",
            instance=scope.get("path"),
            headers={"Retry-After": retry_after},
        )
