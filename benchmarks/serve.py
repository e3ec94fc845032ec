"""Load test of `pilah serve` on loopback: 32 concurrent clients x 25 requests with real photos.

Prints a table: one client sending requests one after another (the baseline, same run), then 32 clients
at once; latency p50/p99, throughput, errors, and the server's resident memory before and after 1,000
requests.

    python benchmarks/serve.py [--clients 32] [--requests 25] [--model M]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from common import rss_mb  # noqa: E402

from browser import free_port, start_pilah, stop, wait_for_health  # noqa: E402
from pilah.hardware import describe  # noqa: E402

PHOTOS = sorted((ROOT / "examples").glob("*.jpg"))


def send(client: httpx.Client, i: int) -> tuple[int, float]:
    photo = PHOTOS[i % len(PHOTOS)]
    started = time.perf_counter()
    response = client.post("/v1/predict", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
    return response.status_code, time.perf_counter() - started


def run_clients(url: str, clients: int, requests: int) -> tuple[list[tuple[int, float]], float]:
    def client(c: int) -> list[tuple[int, float]]:
        with httpx.Client(base_url=url, timeout=300) as own:
            return [send(own, c * requests + k) for k in range(requests)]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for batch in pool.map(client, range(clients)) for r in batch]
    return results, time.perf_counter() - started


def row(name: str, results: list[tuple[int, float]], seconds: float) -> str:
    latencies = sorted(t for _, t in results)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    errors = sum(status != 200 for status, _ in results)
    return (
        f"| {name} | {len(results)} | {errors} | {statistics.median(latencies) * 1000:.0f} | {p99 * 1000:.0f} "
        f"| {len(results) / seconds:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=25)
    parser.add_argument("--baseline-requests", type=int, default=50)
    parser.add_argument("--model")
    args = parser.parse_args()
    port = free_port()
    server = start_pilah("serve", port, Path(args.model) if args.model else None)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, path="/readyz")
        with httpx.Client(base_url=url, timeout=300) as client:
            for i in range(5):
                send(client, i)  # warm-up
            rss_start = rss_mb(server.pid)
            started = time.perf_counter()
            single = [send(client, i) for i in range(args.baseline_requests)]
            single_seconds = time.perf_counter() - started
        load, load_seconds = run_clients(url, args.clients, args.requests)
        rss_warm = rss_mb(server.pid)  # every batch shape has been seen: what stays from here on
        more, _ = run_clients(url, args.clients, 1000 // args.clients + 1)
        rss_end = rss_mb(server.pid)
    finally:
        stop(server)
    print(f"machine: {describe()}\n")
    print("| scenario | requests | errors | p50 ms | p99 ms | requests/s |")
    print("|---|---|---|---|---|---|")
    print(row("1 client, sequential (baseline)", single, single_seconds))
    print(row(f"{args.clients} clients x {args.requests}", load, load_seconds))
    base_rate = len(single) / single_seconds
    print(f"\nthroughput under load: {len(load) / load_seconds / base_rate:.2f}x the sequential baseline")
    errors = sum(status != 200 for status, _ in more)
    print(
        f"server RSS: {rss_start:.0f} MB after 5 requests, {rss_warm:.0f} MB after the load above, "
        f"{rss_end:.0f} MB after {len(more)} more requests ({rss_end - rss_warm:+.0f} MB; {errors} errors)"
    )


if __name__ == "__main__":
    main()
