"""`AdminRoute`: an APIRoute class that counts each admin request by route template and status.

Use it with `APIRouter(route_class=AdminRoute)`. The count is taken around the
route handler, so requests rejected by authentication or validation count too.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from app.errors import HookledgerError

METRICS_KEY = "app.auth.metrics"


class AdminRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        template = self.path_format

        async def counted_handler(request: Request) -> Response:
            status = 500
            try:
                response = await handler(request)
                status = response.status_code
                return response
            except HookledgerError as exc:
                status = exc.status
                raise
            except RequestValidationError:
                status = 422
                raise
            except HTTPException as exc:
                status = exc.status_code
                raise
            finally:
                _record(request, template, status)

        return counted_handler


def _record(request: Request, template: str, status: int) -> None:
    state = getattr(request.app.state, "hookledger", None)
    metrics = state.extensions.get(METRICS_KEY) if state is not None else None
    if metrics is not None:
        metrics.admin_requests.labels(template, request.method, str(status)).inc()
