"""In-process cost of ``citrix_connector.crypto.generate_private_key`` per key type.

    python benchmarks/bench_keygen.py [--repeat N]

RSA generation time is random (it searches for primes), so the spread is wide and the median is
the figure to quote; EC keys are one scalar multiplication.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from citrix_connector.crypto import KeySpec, generate_private_key  # noqa: E402

SPECS: list[tuple[str, KeySpec]] = [
    ("RSA 2048", KeySpec("RSA", size=2048)),
    ("RSA 3072", KeySpec("RSA", size=3072)),
    ("RSA 4096", KeySpec("RSA", size=4096)),
    ("ECDSA P-256", KeySpec("ECDSA", curve="P-256")),
    ("ECDSA P-384", KeySpec("ECDSA", curve="P-384")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeat", type=int, default=21, help="timed keys per type (after 1 warm-up)")
    args = parser.parse_args()
    print(f"{'key type':<12} {'n':>3}  {'median ms':>10}  {'min ms':>8}  {'max ms':>8}")
    for label, spec in SPECS:
        generate_private_key(spec)  # warm-up
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            generate_private_key(spec)
            times.append((time.perf_counter() - start) * 1000)
        print(
            f"{label:<12} {len(times):>3}  {statistics.median(times):>10.2f}  "
            f"{min(times):>8.2f}  {max(times):>8.2f}"
        )


if __name__ == "__main__":
    main()
