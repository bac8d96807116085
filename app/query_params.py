"""Reject query parameters that a route does not declare, and repeats of single-valued ones.

FastAPI ignores undeclared query parameters and keeps the last value of a
repeated one, so a typo such as `subjet=cus_1` would return an unfiltered
result with 200. Routes add `reject_unexpected_query_parameters` as a
dependency after authentication. It reads the declared parameters from the
matched route, so the accepted list cannot drift from the route's signature.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant

from app.errors import UnprocessableError

_REPEATABLE_ORIGINS = (list, tuple, set, frozenset)


def reject_unexpected_query_parameters(request: Request) -> None:
    """Raise 422 invalid_parameter for an undeclared or a repeated single-valued query parameter."""
    route = request.scope.get("route")
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None:
        return
    declared = dict(_query_parameters(dependant))
    accepted = sorted(declared)
    operation = f"{request.method} {getattr(route, 'path', request.url.path)}"

    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in declared]
    if unknown:
        raise UnprocessableError(
            _describe_unknown(unknown, accepted, operation),
            code="invalid_parameter",
            parameter=unknown[0][:64],
            accepted=accepted,
        )
    for name, repeatable in declared.items():
        count = len(request.query_params.getlist(name))
        if count > 1 and not repeatable:
            raise UnprocessableError(
                f"Query parameter {name!r} was sent {count} times, but {operation} takes one value; "
                "send it once.",
                code="invalid_parameter",
                parameter=name,
                accepted=accepted,
            )


def _describe_unknown(unknown: list[str], accepted: list[str], operation: str) -> str:
    if not accepted:
        names = ", ".join(repr(name[:64]) for name in unknown)
        return f"{operation} takes no query parameters; remove {names}."
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{name[:64]!r}{hint}")
    noun = "parameter" if len(unknown) == 1 else "parameters"
    return (
        f"Unknown query {noun} {', '.join(parts)} for {operation}; "
        f"the accepted parameters are: {', '.join(accepted)}."
    )


def _query_parameters(dependant: Dependant) -> Iterator[tuple[str, bool]]:
    """Yield each declared query parameter's name and whether it takes several values."""
    for field in dependant.query_params:
        yield field.alias, _is_repeatable(field.field_info.annotation)
    for child in dependant.dependencies:
        yield from _query_parameters(child)


def _is_repeatable(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in _REPEATABLE_ORIGINS:
        return True
    if origin is Union or origin is types.UnionType:
        return any(_is_repeatable(argument) for argument in get_args(annotation) if argument is not type(None))
    return False
