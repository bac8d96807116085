"""Write a file of pre-signed Standard Webhooks deliveries for the ingest benchmarks.

Each line is one delivery, tab-separated: `webhook-id`, `webhook-timestamp`,
`webhook-signature` and the JSON body (about `--body-bytes` bytes, no tabs or
newlines). Ids are unique across the file, and across files when each file
gets its own `--prefix`. The signature timestamp is the time of writing, so
the file must be used within the receiver's tolerance (300 seconds for
Standard Webhooks).

    python scripts/bench/gen_deliveries.py --count 100000 --out /tmp/deliveries.tsv
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import random
import time
from pathlib import Path

import orjson

# A benchmark-only secret; the same value goes into the benchmark configuration.
BENCH_SECRET = "whsec_" + base64.b64encode(b"hookledger-benchmark-secret-0001").decode()

EVENT_TYPES = ("invoice.paid", "invoice.created", "customer.updated", "charge.succeeded")


def build_body(
    index: int, prefix: str, body_bytes: int, rng: random.Random, timestamp: int
) -> bytes:
    """Build one event body of about `body_bytes` bytes."""
    body = {
        "id": f"{prefix}_{index}",
        "type": EVENT_TYPES[index % len(EVENT_TYPES)],
        "timestamp": timestamp,
        "data": {
            "user_id": f"user_{rng.randrange(50_000)}",
            "amount": rng.randrange(100, 100_000),
            "currency": "eur",
            "lines": [],
        },
    }
    encoded = orjson.dumps(body)
    filler = max(0, body_bytes - len(encoded) - 12)
    body["data"]["note"] = "x" * filler
    return orjson.dumps(body)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the `webhook-signature` value for one delivery."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def write_deliveries(
    path: Path, count: int, *, prefix: str, body_bytes: int, seed: int = 1
) -> None:
    """Write `count` signed deliveries to `path`."""
    key = base64.b64decode(BENCH_SECRET.removeprefix("whsec_"))
    rng = random.Random(seed)
    timestamp = int(time.time())
    with path.open("wb") as out:
        for index in range(count):
            msg_id = f"{prefix}_{index}"
            body = build_body(index, prefix, body_bytes, rng, timestamp)
            signature = sign(key, msg_id, timestamp, body)
            out.write(
                b"\t".join((msg_id.encode(), str(timestamp).encode(), signature.encode(), body))
                + b"\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="Number of deliveries to write.")
    parser.add_argument("--out", type=Path, required=True, help="Output file.")
    parser.add_argument(
        "--prefix", default=f"msg_{int(time.time())}", help="Prefix of every webhook-id."
    )
    parser.add_argument(
        "--body-bytes", type=int, default=1024, help="Approximate body size in bytes."
    )
    args = parser.parse_args()
    write_deliveries(args.out, args.count, prefix=args.prefix, body_bytes=args.body_bytes)


if __name__ == "__main__":
    main()
