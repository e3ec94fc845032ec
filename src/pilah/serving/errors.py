"""Every error the service answers is JSON `{"code": ..., "message": ...}` with a stable code (docs/api.md lists
them): Pilah's own, FastAPI's validation, Starlette's routing and form parsing, and the HTTP server's own 400 for
bytes that are no HTTP request (uvicorn answers that one in plain text unless told otherwise)."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pilah.errors import PilahError

# Starlette's own errors, by status: routing, and a multipart body it cannot parse (no boundary, a part header over
# its size limit, over 1,000 files or fields).
STARLETTE_CODES = {400: "invalid_form", 404: "not_found", 405: "method_not_allowed", 413: "too_large_upload"}
NOT_HTTP_MESSAGE = "the request is not valid HTTP/1.1 (a request line, a header or Content-Length over its limits)"


class ApiError(PilahError):
    """An error answered as JSON with its HTTP status (and headers, e.g. Retry-After)."""

    def __init__(self, message: str, code: str, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code)
        self.http_status, self.headers = status, headers


def error_response(error: PilahError) -> JSONResponse:
    return JSONResponse(
        {"code": error.code, "message": error.message}, error.http_status, headers=getattr(error, "headers", None)
    )


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PilahError)
    async def pilah_error(request: Request, error: PilahError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        missing = any(e.get("type") == "missing" for e in error.errors())
        code = "missing_file" if missing else "invalid_request"
        fields = ", ".join(".".join(map(str, e.get("loc", ()))) for e in error.errors())
        return error_response(ApiError(f"invalid or missing form field(s): {fields}", code, 422))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = STARLETTE_CODES.get(error.status_code, "bad_request")
        return error_response(ApiError(str(error.detail), code, error.status_code))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return error_response(ApiError(f"unexpected {type(error).__name__}", "internal", 500))


def json_errors_protocol() -> type:
    """uvicorn's HTTP protocol (httptools or h11, as it would choose) with its plain-text 400 answered as JSON."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class JsonErrorsProtocol(AutoHTTPProtocol):
        def send_400_response(self, msg: str) -> None:  # uvicorn's message is fixed text, never the request's
            body = json.dumps({"code": "bad_http_request", "message": NOT_HTTP_MESSAGE}).encode()
            head = f"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            self.transport.write(head.encode() + b"connection: close\r\n\r\n" + body)
            self.transport.close()

    return JsonErrorsProtocol
