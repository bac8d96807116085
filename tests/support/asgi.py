"""Raw ASGI requests, for tests that control exactly when body chunks arrive."""

from __future__ import annotations

from typing import Any


def http_post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Return the ASGI scope of a POST to `path` from 127.0.0.1."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
    }
