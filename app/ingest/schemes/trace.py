"""A record of the steps a verifier took, for `hookledger verify` to print."""

from __future__ import annotations


class Trace:
    """Collects one line per verification step when enabled; ignores them otherwise.

    Lines never contain a secret or an expected signature, only what was
    received and whether it matched.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.lines: list[str] = []

    def note(self, line: str) -> None:
        """Record one step."""
        if self.enabled:
            self.lines.append(line)


def quiet() -> Trace:
    """Return a trace that records nothing, the default on the request path."""
    return Trace(enabled=False)
