"""CPU per event of reading a request before ingest: JSON decoding and ``EventIn`` validation,
as the events fast path does them, and the input checks that run in front of every route.

    uv run python bench/ingest/validate.py [--n 20000]

Run it against another checkout's code (``PYTHONPATH=/path/to/other/src``) to compare two
versions on one machine in one sitting; parts that version lacks are reported as absent.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from pydantic import TypeAdapter

from openpartner.events.schemas import EventIn

BODY = json.dumps(
    {
        "type": "sale",
        "program_id": "prg_01JD3ZK8Q6Y3W9T2V4X5B7N8M0",
        "customer_id": "cus_4242",
        "amount": "129.00",
        "currency": "USD",
        "occurred_at": "2026-12-01T10:00:00Z",
        "external_id": "order-99812",
        "metadata": {"plan": "pro", "seats": 5, "coupon": None, "tags": ["annual", "web"]},
    }
).encode()


def per_call_us(work: Callable[[], object], n: int) -> float:
    for _ in range(min(n, 1000)):
        work()
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(n):
            work()
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
    adapter: TypeAdapter[EventIn] = TypeAdapter(EventIn)
    decode_validate = per_call_us(lambda: adapter.validate_python(json.loads(BODY)), n)
    print(f"json + EventIn validation: {decode_validate:.2f} us per event (best of 5 x {n})")
    try:
        from openpartner.api.limits import _too_deep  # the InputGuard's body check
    except ImportError:
        print("input guard: absent in this version")
        return
    print(f"input guard body check:   {per_call_us(lambda: _too_deep(BODY), n):.2f} us per event")


if __name__ == "__main__":
    main()
