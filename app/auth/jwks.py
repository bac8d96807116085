"""The issuer's JSON Web Key Set, fetched over HTTP and cached.

Keys are cached for `cache_seconds`. A token whose `kid` is not cached causes
one refetch, at most once per `min_refresh_seconds`, so a flood of tokens
with made-up key ids sends at most one request per interval to the issuer.
When a refetch fails the cached keys stay in use.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import structlog
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from app.auth.errors import KeySetUnavailableError
from app.state import Clock

log = structlog.get_logger("app.auth")

MAX_JWKS_BYTES = 256 * 1024


class JwksCache:
    """RSA signing keys of one issuer by key id."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        clock: Clock,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
    ) -> None:
        self.url = url
        self.client = client
        self.clock = clock
        self.ttl = timedelta(seconds=cache_seconds)
        self.min_refresh = timedelta(seconds=min_refresh_seconds)
        self.fetches = 0
        self._keys: dict[str, RSAKey] | None = None
        self._fetched_at: datetime | None = None
        self._attempted_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def get_key(self, kid: str) -> RSAKey | None:
        """Return the key for `kid`, fetching the set when it is stale or lacks the key."""
        now = self.clock()
        stale = self._keys is None or self._fetched_at is None or now - self._fetched_at >= self.ttl
        if stale or kid not in (self._keys or {}):
            await self._refresh(now)
        return (self._keys or {}).get(kid)

    async def _refresh(self, now: datetime) -> None:
        async with self._lock:
            # Any attempt, a failed one included, starts the quiet interval. Requests that waited
            # for the lock while another one fetched end here too.
            if self._attempted_at is not None and now - self._attempted_at < self.min_refresh:
                if self._keys is None:
                    raise KeySetUnavailableError(
                        f"The signing keys at {self.url} could not be fetched; retry in "
                        f"{int(self.min_refresh.total_seconds()) or 1} seconds."
                    )
                return
            self._attempted_at = now
            try:
                keys = await self._fetch()
            except KeySetUnavailableError:
                if self._keys is None:
                    raise
                log.warning("auth.jwks_refresh_failed_using_cached", url=self.url, cached_keys=len(self._keys))
                return
            self._keys = keys
            self._fetched_at = now
            log.info("auth.jwks_fetched", url=self.url, keys=sorted(keys))

    async def _fetch(self) -> dict[str, RSAKey]:
        self.fetches += 1
        try:
            response = await self.client.get(self.url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            log.warning("auth.jwks_fetch_failed", url=self.url, error=f"{type(exc).__name__}: {exc}")
            raise KeySetUnavailableError(
                f"Fetching the signing keys from {self.url} failed ({type(exc).__name__}); retry later."
            ) from exc
        if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
            log.warning("auth.jwks_fetch_failed", url=self.url, status=response.status_code, size=len(response.content))
            raise KeySetUnavailableError(
                f"Fetching the signing keys from {self.url} returned HTTP {response.status_code}; retry later."
            )
        try:
            document = response.json()
        except ValueError as exc:
            raise KeySetUnavailableError(f"The signing keys at {self.url} are not valid JSON; retry later.") from exc
        return _rsa_signing_keys(document, self.url)


def _rsa_signing_keys(document: object, url: str) -> dict[str, RSAKey]:
    """Import the RSA signature keys of a JWKS document by kid; skip other and broken keys."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeySetUnavailableError(f"The document at {url} is not a JWKS (no 'keys' array); check jwks_url.")
    keys: dict[str, RSAKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = RSAKey.import_key(entry)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("auth.jwks_key_skipped", url=url, kid=kid, error=f"{type(exc).__name__}: {exc}")
    return keys
