"""Shared by the benchmark scripts."""

from __future__ import annotations

from pathlib import Path


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
