"""A replica killed under load: what clients of `pilah serve --engine ray --replicas 2` see (loopback).

    python benchmarks/replica_kill.py [--clients 16] [--requests 20] [--kill-after 2]

Starts the server, warms it up, then sends `clients` x `requests` photos from concurrent clients and SIGKILLs one
of the two replicas `kill-after` seconds in. Every answer is sorted: 200, a JSON error (by its code), an error
that is not the API's JSON (Serve's proxy answering for a dead replica), or a connection closed without an
answer. Prints the machine, that table, and how long Serve took to start a new replica. The baseline is the same
load without a kill, in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import descendants_titled, serve_or_fail, stop  # noqa: E402
from pilah.hardware import describe  # noqa: E402
from pilah.serving.ray_serve import READY_LINE  # noqa: E402

PHOTOS = sorted((ROOT / "examples").glob("*.jpg"))
REPLICA_TITLE = "ray::ServeReplica:pilah:pilah"


def outcome(client: httpx.Client, i: int) -> str:
    photo = PHOTOS[i % len(PHOTOS)]
    try:
        response = client.post("/v1/predict", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
    except httpx.TransportError:
        return "connection closed, no answer"
    if response.status_code == 200:
        return "200"
    try:
        return f"{response.status_code} JSON `{response.json()['code']}`"
    except (ValueError, KeyError):
        return f"{response.status_code} not JSON: {response.text[:40]!r}"


def load(url: str, clients: int, requests: int, kill: tuple[int, float] | None) -> tuple[Counter, float | None]:
    """The outcomes; with `kill` (server pid, delay), one replica is killed and the seconds until a new one runs."""
    replaced: list[float] = []

    def killer() -> None:
        pid, delay = kill
        time.sleep(delay)
        victim = descendants_titled(pid, REPLICA_TITLE)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 300:
            alive = descendants_titled(pid, REPLICA_TITLE)
            if len(alive) == 2 and victim not in alive:
                replaced.append(time.monotonic() - killed_at)
                return
            time.sleep(0.2)

    def client(c: int) -> list[str]:
        with httpx.Client(base_url=url, timeout=300) as own:
            return [outcome(own, c * requests + k) for k in range(requests)]

    watcher = threading.Thread(target=killer) if kill else None
    if watcher:
        watcher.start()
    with ThreadPoolExecutor(clients) as pool:
        counts = Counter(r for batch in pool.map(client, range(clients)) for r in batch)
    if watcher:
        watcher.join()
    return counts, replaced[0] if replaced else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--kill-after", type=float, default=2.0)
    args = parser.parse_args()
    flags = ("--engine", "ray", "--replicas", "2")
    url, server = serve_or_fail("serve", None, *flags, health="/readyz", timeout=600, ready_output=READY_LINE)
    try:
        with httpx.Client(base_url=url, timeout=300) as warm:
            for i in range(5):
                outcome(warm, i)
        baseline, _ = load(url, args.clients, args.requests, None)
        killed, replaced_after = load(url, args.clients, args.requests, (server.pid, args.kill_after))
    finally:
        stop(server)
    replaced = f"a new replica ran {replaced_after:.1f} s later" if replaced_after else "no new replica within 300 s"
    print(f"\nmachine: {describe()}")
    print(
        f"{args.clients} clients x {args.requests} requests; one of 2 replicas SIGKILLed after {args.kill_after:g} s; "
    )
    print(f"{replaced}\n")
    print("| outcome | no kill (baseline) | one replica killed |")
    print("|---|---|---|")
    for name in sorted(set(baseline) | set(killed)):
        print(f"| {name} | {baseline[name]} | {killed[name]} |")


if __name__ == "__main__":
    main()
