"""Read a delivery's body once, capped while reading, and parse it after verification."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from app.errors import BadRequestError, PayloadTooLargeError, RequestTimeoutError, UnsupportedMediaTypeError

# Time a sender gets to deliver a whole body once the headers have arrived.
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0


async def read_capped_body(
    request: Request,
    limit: int,
    timeout: float = DEFAULT_BODY_TIMEOUT_SECONDS,
    *,
    limit_name: str = "for this source",
    remedy: str = "send a smaller event or raise max_body_bytes for the source",
) -> bytes:
    """Return the raw body, raising 413 as soon as more than `limit` bytes arrive.

    A body that has not fully arrived after `timeout` seconds gets 408, so a
    client that stops sending mid-body cannot hold the request open.
    `limit_name` and `remedy` word the 413 for the endpoint that reads the body.
    """
    try:
        async with asyncio.timeout(timeout):
            return await _read_capped_body(request, limit, limit_name, remedy)
    except TimeoutError as exc:
        raise RequestTimeoutError(
            f"The request body did not arrive within {timeout:g} seconds; send the whole body at once.",
            code="body_timeout",
        ) from exc


async def _read_capped_body(request: Request, limit: int, limit_name: str, remedy: str) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"The body is {int(declared)} bytes (Content-Length) and the limit {limit_name} is {limit} bytes; "
            f"{remedy}.",
            limit=limit,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"The body exceeds the limit of {limit} bytes {limit_name}; {remedy}.",
                limit=limit,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def decode_content_encoding(body: bytes, encoding: str | None, *, allowed: bool, limit: int) -> bytes:
    """Undo `Content-Encoding: gzip` where the source allows it, capping the decompressed size."""
    if not encoding or encoding.strip().lower() == "identity":
        return body
    name = encoding.strip().lower()
    if name not in {"gzip", "x-gzip"}:
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported; send the body uncompressed or gzip-compressed.",
            code="unsupported_content_encoding",
        )
    if not allowed:
        raise UnsupportedMediaTypeError(
            "Content-Encoding gzip is not enabled for this source; send the body uncompressed "
            "or set decompress = true for the source.",
            code="unsupported_content_encoding",
        )
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        output = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequestError(
            f"The gzip body could not be decompressed ({exc}); send a valid gzip stream.", code="malformed_payload"
        ) from exc
    if len(output) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLargeError(
            f"The decompressed body exceeds the limit of {limit} bytes for this source; "
            "send a smaller event or raise max_decompressed_bytes for the source.",
            limit=limit,
        )
    if not decompressor.eof:
        raise BadRequestError("The gzip body is truncated; send the complete stream.", code="malformed_payload")
    return output


def parse_body(body: bytes, content_type: str) -> Any:
    """Parse a verified body: form-encoded bodies become JSON objects, everything else is JSON."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        return parse_form(body)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(
            f"The body is not valid UTF-8 (invalid byte at offset {exc.start}); send JSON encoded as UTF-8.",
            code="malformed_payload",
        ) from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(
            f"The body is not valid JSON ({exc}); send a JSON object, or a form-encoded body "
            "with Content-Type application/x-www-form-urlencoded.",
            code="malformed_payload",
        ) from exc


def parse_form(body: bytes) -> dict[str, Any]:
    """Turn a form body into a JSON object; repeated keys become lists."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequestError(
            f"The form-encoded body is invalid ({exc}); send UTF-8 key=value pairs joined by '&'.",
            code="malformed_payload",
        ) from exc
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            existing = result[key]
            result[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            result[key] = value
    return result
