"""`pilah web serve`: the built site over HTTP, with the headers the page needs: cross-origin isolation (so that
ONNX Runtime Web may use threads), the right types for modules, WebAssembly and the manifest, and revalidation on
every load (the service worker keeps the offline copy). Static files only: no listing, nothing written."""

from __future__ import annotations

import functools
import http.server
import sys
from pathlib import Path
from typing import ClassVar

from pilah.errors import UsageError
from pilah.web.build import SITE_MARKER

DEFAULT_PORT = 8700
DEFAULT_SITE = Path("build/web")
HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
    ".gz": "application/octet-stream",  # the page unpacks these itself: no Content-Encoding
    "": "application/octet-stream",
}


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def end_headers(self) -> None:
        for name, value in HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def list_directory(self, path):  # a folder without index.html is not shown
        self.send_error(404, "Not found")
        return None

    def log_message(self, format: str, *args) -> None:  # one short line a request, no local paths
        if args and str(args[1] if len(args) > 1 else "").startswith(("4", "5")):
            super().log_message(format, *args)


class SiteServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A browser that goes away mid-answer (a closed tab, a phone gone offline) is no error of the server's."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def check_site(folder: Path) -> None:
    if not (folder / SITE_MARKER).is_file():
        raise UsageError(f"{folder}: no site here; build it first with pilah web build --out {folder}", "no_site")


def make_server(folder: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, handler=SiteHandler) -> SiteServer:
    check_site(folder)
    return SiteServer((host, port), functools.partial(handler, directory=str(folder.resolve())))
