"""The API under load with one process against Ray Serve with 1 and 2 replicas, in one run (loopback).

    python benchmarks/serve_replicas.py [--clients 32] [--requests 25]

For each engine, starts the server, warms it up with 5 requests, then sends `clients` x `requests` photos from
concurrent clients. Prints the machine and a table: errors, latency p50/p99, requests/s, and the ratio against
the plain `pilah serve`, measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from serve import run_clients, send  # noqa: E402

from browser import serve_or_fail, stop  # noqa: E402
from pilah.hardware import describe  # noqa: E402
from pilah.serving.ray_serve import READY_LINE  # noqa: E402

ENGINES = [
    ("pilah serve (one process, baseline)", []),
    ("Ray Serve, 1 replica", ["--engine", "ray", "--replicas", "1"]),
    ("Ray Serve, 2 replicas", ["--engine", "ray", "--replicas", "2"]),
]


def measure(flags: list[str], clients: int, requests: int) -> tuple[list[tuple[int, float]], float]:
    ready = READY_LINE if "ray" in flags else None  # every replica up, not just the first to answer
    url, server = serve_or_fail("serve", None, *flags, health="/readyz", timeout=600, ready_output=ready)
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            for i in range(5):
                send(client, i)
        return run_clients(url, clients, requests)
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=25)
    args = parser.parse_args()
    results = [(name, *measure(flags, args.clients, args.requests)) for name, flags in ENGINES]
    base = len(results[0][1]) / results[0][2]
    print(f"\nmachine: {describe()}")
    print(f"{args.clients} concurrent clients x {args.requests} requests, the 12 example photos\n")
    print("| engine | requests | errors | p50 ms | p99 ms | requests/s | vs one process |")
    print("|---|---|---|---|---|---|---|")
    for name, answers, seconds in results:
        latencies = sorted(t for _, t in answers)
        errors = sum(status != 200 for status, _ in answers)
        p50, p99 = latencies[len(latencies) // 2], latencies[int(0.99 * (len(latencies) - 1))]
        rate = len(answers) / seconds
        print(
            f"| {name} | {len(answers)} | {errors} | {p50 * 1000:.0f} | {p99 * 1000:.0f} | {rate:.1f} "
            f"| {rate / base:.2f}× |"
        )


if __name__ == "__main__":
    main()
