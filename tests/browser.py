"""Helpers for tests and benchmarks that start a real server (app or API) and drive it, e.g. in Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a machine without a display or internet: no sandbox as root, no background connections.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_missing() -> str | None:
    """Why Debian's Chromium cannot be used here, or None. Tests never install it: `.ci/run` does, and a developer
    runs `apt-get install chromium` once."""
    return None if CHROMIUM.exists() else f"no {CHROMIUM}: apt-get install chromium (.ci/run does)"


def require_chromium() -> None:
    """For a browser test: fail in CI (`CI=true`, where `.ci/run` installs Chromium) when Chromium cannot be had,
    skip with the reason elsewhere."""
    reason = chromium_missing()
    if reason and os.environ.get("CI"):
        pytest.fail(f"the browser tests need Chromium: {reason}")
    if reason:
        pytest.skip(reason)


def require_tool(name: str) -> None:
    """Node.js and npm (build and check the offline browser app): fail in CI (`CI=true`, where they are installed),
    skip with the reason elsewhere."""
    if shutil.which(name):
        return
    reason = f"no {name} on PATH: the offline browser app's build and checks need Node.js and npm"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


PORT_TRIES = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, timeout: float = 180, path: str = "/_stcore/health") -> None:
    """Wait until the server answers 200 on its health path (Streamlit's by default); fail early if it died."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    _wait_until(answers, process, timeout, f"{url}{path} did not answer 200")


def wait_for_output(process: subprocess.Popen, text: str, timeout: float) -> None:
    """Wait until the server has printed `text` (a server started by `launch_server`); fail early if it died."""
    log: Path = process.log_path  # type: ignore[attr-defined]
    _wait_until(lambda: text in log.read_text(errors="replace"), process, timeout, f"the server did not print {text!r}")


def _wait_until(ready, process: subprocess.Popen, timeout: float, failure: str) -> None:
    """Ask `ready()` every half second until it holds: a RuntimeError if the server exits first, a TimeoutError
    saying `failure` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        if ready():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{failure} in {timeout:.0f} s")
        time.sleep(0.5)


def start_app(port: int, model: Path | None = None) -> subprocess.Popen:
    return start_pilah("app", port, model)


def serve_or_fail(
    verb: str,
    model: Path | None,
    *flags: str,
    health: str = "/_stcore/health",
    timeout: float = 180,
    cwd: Path | None = None,
    ready_output: str | None = None,
):
    """`pilah app` or `pilah serve` on a free loopback port, ready within `timeout` s: its URL and process; the
    test fails with the server's output if it does not come up. `ready_output`: also wait for the server to print
    it (Ray Serve answers from its first replica before the others are up)."""
    command = [sys.executable, "-m", "pilah.cli", verb, *flags, *(["--model", str(model)] if model else [])]
    return launch_on_free_port(lambda port: [*command, "--port", str(port)], health, timeout, cwd, ready_output)


def serve_site(folder: Path):
    """`pilah web serve --dir folder` on a free loopback port: its URL and process."""
    command = [sys.executable, "-m", "pilah.cli", "web", "serve", "--dir", str(folder)]
    return launch_on_free_port(lambda port: [*command, "--port", str(port)], health="/site.json", timeout=60)


def launch_on_free_port(
    command_for, health: str, timeout: float = 180, cwd: Path | None = None, ready_output: str | None = None
):
    """Start the server that `command_for(port)` runs on a free loopback port: its URL and process, once its health
    path answers (and it has printed `ready_output`). A port taken between `free_port` and the server's bind
    (another test process got it first) means another try on another port, never a failure."""
    for _ in range(PORT_TRIES):
        port = free_port()
        process = launch_server(command_for(port), cwd)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            wait_for_health(url, process, timeout, path=health)
            if ready_output:
                wait_for_output(process, ready_output, deadline - time.monotonic())
            return url, process
        except (RuntimeError, TimeoutError) as error:
            output = stop(process)
            if "already in use" not in output.lower():
                pytest.fail(f"{error}\n{output}")
    pytest.fail(f"no free port in {PORT_TRIES} tries")


def start_pilah(
    verb: str, port: int, model: Path | None = None, *flags: str, cwd: Path | None = None
) -> subprocess.Popen:
    """`pilah app` or `pilah serve` on a loopback port, output collected for the failure message."""
    command = [sys.executable, "-m", "pilah.cli", verb, "--port", str(port), *flags]
    command += ["--model", str(model)] if model else []
    return launch_server(command, cwd)


def launch_server(command: list, cwd: Path | None = None) -> subprocess.Popen:
    """Start a server whose output goes to a file, not a pipe: an access log would fill an unread
    pipe and block the server. `stop` returns the output."""
    with tempfile.NamedTemporaryFile("w", prefix="pilah-server-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen) -> str:
    """Stop the server; return what it printed."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log: Path = process.log_path  # type: ignore[attr-defined]
    output = log.read_text(errors="replace")
    log.unlink()
    return output


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}  # a phone's screen, 390 x 844
# The browser app (`pilah web build`) has answered its self-check, or said why it cannot. A function, not an
# expression: the page's Content-Security-Policy forbids the eval Playwright uses for expressions.
WEB_APP_READY = (
    "() => window.pilah && (window.pilah.ready || document.getElementById('status').classList.contains('problem'))"
)


def launch(playwright, extra_flags: list[str] | None = None):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_FLAGS, *(extra_flags or [])])


# Times an upload inside the page, so the number is not rounded up by Playwright's polling (which backs
# off to 500 ms between checks): from the file input's `change` event to the first animation frame after
# an element with the expected text entered the page.
_ARM_UPLOAD_TIMER = """([selector, text, timeoutMs]) => {
  let started = null;
  const onChange = (event) => {
    if (!event.target.matches(selector)) return;
    started = performance.now();
    document.removeEventListener("change", onChange, true);
  };
  document.addEventListener("change", onChange, true);
  const found = (node) => (node.textContent || "").includes(text);
  window.__pilahUpload = new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error(`"${text}" did not appear in ${timeoutMs} ms`)), timeoutMs);
    const observer = new MutationObserver((records) => {
      if (started === null || !records.some((r) => [...r.addedNodes].some(found) || found(r.target))) return;
      observer.disconnect();
      requestAnimationFrame(() => resolve(performance.now() - started));
    });
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
  });
}"""


def wait_for_one(page, selector: str, timeout_ms: float = 180_000) -> None:
    """Wait until exactly one element matches: a widget replaced by a rerun lingers until that rerun ends."""
    script = "(selector) => document.querySelectorAll(selector).length === 1"
    page.wait_for_function(script, arg=selector, timeout=timeout_ms)


def wait_for_run_end(page, timeout_ms: int = 180_000) -> None:
    """Until Streamlit's script run is over: no running icon, and no element left over from the previous run
    (which Streamlit keeps, marked stale, until the new run has replaced it)."""
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
              && !document.querySelector('[data-stale="true"]')""",
        timeout=timeout_ms,
    )


def timed_upload(page, selector: str, path: Path, text: str, timeout_ms: int = 180_000) -> float:
    """Upload `path` through the file input at `selector`; milliseconds until `text` is painted."""
    wait_for_one(page, selector, timeout_ms)
    page.evaluate(_ARM_UPLOAD_TIMER, [selector, text, timeout_ms])
    page.locator(selector).set_input_files(path)
    return float(page.evaluate("window.__pilahUpload"))


def descendants_titled(pid: int, prefix: str) -> list[int]:
    """PIDs of the descendants of `pid` whose command line starts with `prefix` (Ray titles each worker after its
    actor): never a process of another test's, as a search of the whole machine would find."""
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if " ".join(child.cmdline()).startswith(prefix):
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found
