"""The size checks on request bodies and the JSON form of every error the API answers."""

from __future__ import annotations

from fastapi import UploadFile
from fastapi.responses import JSONResponse

from pilah.errors import PilahError


class ApiError(PilahError):
    """An error answered as JSON `{"code": ..., "message": ...}` with its HTTP status (and headers)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code)
        self.http_status, self.headers = status, headers


def error_response(error: PilahError) -> JSONResponse:
    return JSONResponse(
        {"code": error.code, "message": error.message}, error.http_status, headers=getattr(error, "headers", None)
    )


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large_upload", f"{upload.filename or 'the file'} is over the {limit:,}-byte limit")
    return data


class BodyLimit:
    """Refuse request bodies over the limit (413) before they are parsed or kept in memory."""

    def __init__(self, app, limit_for) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await error_response(body_too_large(limit))(scope, receive, send)
        received, cut_off, answered = 0, False, False

        async def counting_receive():
            """The body as it streams in; past the limit the app is told the client left, so it stops reading."""
            nonlocal received, cut_off
            if cut_off:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                cut_off = True
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message) -> None:
            """The app's own answer to a cut-off body (a parse error) is replaced by the 413 below."""
            nonlocal answered
            if not cut_off:
                answered = True
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not cut_off:
                raise
        if cut_off and not answered:  # a streamed body (no Content-Length) that outgrew the limit
            await error_response(body_too_large(limit))(scope, receive, send)


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large_upload", f"the request body is over the {limit:,}-byte limit")
