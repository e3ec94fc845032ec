"""The size checks on requests: query strings, bodies and each uploaded file."""

from __future__ import annotations

import anyio
from fastapi import UploadFile

from pilah.images import check_upload_size
from pilah.serving.errors import ApiError, error_response
from pilah.serving.settings import DRAIN_SECONDS, MAX_QUERY_BYTES


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The file's bytes, reading no more than one byte past the limit: 413 `too_large_upload` beyond it."""
    data = await upload.read(limit + 1)
    check_upload_size(len(data), limit)
    return data


class BodyLimit:
    """Refuse request bodies over the limit (413), and query strings no route needs (414), before they are parsed
    or kept in memory. An answer given before the body is read whole (a form that cannot be parsed) waits for the
    rest of it, within the limit: a connection closed with unread bytes is reset, and the client, still sending or
    not yet reading, loses the answer."""

    def __init__(self, app, limit_for) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            error = ApiError(f"the query string is over {MAX_QUERY_BYTES:,} bytes", "query_too_long", 414)
            return await error_response(error)(scope, receive, send)
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await error_response(body_too_large(limit))(scope, receive, send)
        received, cut_off, body_done, answered = 0, False, False, False

        async def counting_receive():
            """The body as it streams in; past the limit the app is told the client left, so it stops reading."""
            nonlocal received, cut_off, body_done
            if cut_off or body_done:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if received > limit:
                cut_off = True
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message) -> None:
            """The app's own answer to a cut-off body (a parse error) is replaced by the 413 below; any other answer
            goes out once the body is read."""
            nonlocal answered
            if cut_off and not answered:
                return
            if message["type"] == "http.response.start":
                with anyio.move_on_after(DRAIN_SECONDS):  # a client that stops sending mid-body is not waited for
                    while not (body_done or cut_off):
                        await counting_receive()
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
    return ApiError(f"the request body is over the {limit:,}-byte limit", "too_large_upload", 413)
