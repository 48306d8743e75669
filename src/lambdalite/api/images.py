"""``/_lambdalite/images``: loading and listing container images over HTTP.

Images are loaded through the server, not written into its data directory by the command
line: the server is the only writer of its store, checks every archive itself, and a client
on another machine (or in a container without the data directory) works the same way.

* ``GET /_lambdalite/images`` → ``{"Images": [...]}``, newest first;
* ``POST /_lambdalite/images[?name=repo:tag]`` with the archive as the body (a ``docker
  save`` tar, possibly gzip-compressed, or an OCI image archive) → ``{"Images": [...]}``, the
  images it held; a bad archive is ``400 {"message": ...}`` saying what is wrong.

The body is streamed to a file in the store's scratch directory, never held in memory, so
archives of several gigabytes load. An OCI image layout (a directory) is sent as a tar of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from lambdalite.api.asgi import Receive, Scope, Send
from lambdalite.images import MAX_IMAGE_BYTES, ImageError, ImageStore

IMAGES_PATH = "/_lambdalite/images"
# Compressed layers and archive overhead may exceed the unpacked limit a little, no more.
MAX_UPLOAD = MAX_IMAGE_BYTES + MAX_IMAGE_BYTES // 10


class ImagesEndpoint:
    def __init__(self, store: ImageStore) -> None:
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].rstrip("/") != IMAGES_PATH:
            await _reply(send, 404, {"message": "Not Found"})
        elif scope["method"] == "GET":
            images = await asyncio.to_thread(self.store.images)
            await _reply(send, 200, {"Images": [i.as_json() for i in images]})
        elif scope["method"] == "POST":
            await self._load(scope, receive, send)
        else:
            await _reply(send, 405, {"message": "Use GET to list images, POST to load one."})

    async def _load(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        names = tuple(query.get("name", []))
        scratch = self.store.root / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=scratch)
        path = Path(name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        await _reply(
                            send,
                            413,
                            {"message": f"image archives are limited to {MAX_UPLOAD} bytes"},
                        )
                        return
                    out.write(chunk)
                    more = message.get("more_body", False)
            if size == 0:
                await _reply(send, 400, {"message": "send the image archive as the request body"})
                return
            try:
                loaded = await asyncio.to_thread(self.store.load, path, names)
            except ImageError as exc:
                await _reply(send, 400, {"message": str(exc)})
                return
            await _reply(send, 200, {"Images": [i.as_json() for i in loaded]})
        finally:
            with contextlib.suppress(OSError):
                path.unlink()


async def _reply(send: Send, status: int, document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
