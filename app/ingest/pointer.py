"""JSON Pointer (RFC 6901) lookups used to extract event fields from payloads."""

from __future__ import annotations

from typing import Any

MISSING: Any = object()


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """Split a JSON pointer into reference tokens; raise `ValueError` if it is invalid."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} is invalid: it must be empty or start with '/'.")
    tokens = pointer[1:].split("/")
    for token in tokens:
        stripped = token.replace("~0", "").replace("~1", "")
        if "~" in stripped:
            raise ValueError(f"JSON pointer {pointer!r} is invalid: '~' must be followed by 0 or 1.")
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in tokens)


def resolve_pointer(document: Any, pointer: str, default: Any = MISSING) -> Any:
    """Return the value at `pointer` in `document`, or `default` when it is absent."""
    current = document
    for token in parse_pointer(pointer):
        if isinstance(current, dict):
            if token not in current:
                return default
            current = current[token]
        elif isinstance(current, list):
            if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
                return default
            index = int(token)
            if index >= len(current):
                return default
            current = current[index]
        else:
            return default
    return current
