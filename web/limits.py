"""Resource bounds of the web UI: request-body cap, a bounded worker pool and a time limit.

A request's body is read up to ``body_bytes`` before anything parses it (413
beyond). The calculators and the results reader run on ``workers`` threads
with at most ``queue`` more requests waiting: one more is answered 429 at
once, and a request not finished within ``timeout_s`` is answered 503. A
thread cannot be killed, so a request over the time limit keeps its slot
until its computation ends (later requests get 429 meanwhile rather than
piling up work); a timed-out request still waiting in the queue is dropped.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class WebLimits:
    body_bytes: int = 1 << 20   # request body cap (413 beyond)
    workers: int = 2            # calculator / results requests computed at once
    queue: int = 4              # more requests waiting for a worker (429 beyond)
    timeout_s: float = 30.0     # per request, waiting included (503 beyond)


class Busy(Exception):
    """Every worker and queue slot is taken (429)."""


class TooSlow(Exception):
    """The request did not finish within the time limit (503)."""


def _error_body(kind: str, msg: str) -> bytes:
    return json.dumps({"detail": [{"type": kind, "loc": ["body"], "msg": msg}]}).encode()


class BodyCap:
    """ASGI middleware: an HTTP request body over `limit` bytes is refused with 413 before parsing."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def _refuse(self, send: Any) -> None:
        body = _error_body("too_large", f"request body over {self.limit} bytes")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        chunks, size, more = [], 0, True
        while more:  # read it all (at most `limit` bytes held), then replay it to the app
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class WorkerPool:
    """`workers` threads, `queue` waiting slots, a per-request time limit (see the module doc)."""

    def __init__(self, limits: WebLimits) -> None:
        self.limits = limits
        self._executor = ThreadPoolExecutor(limits.workers, thread_name_prefix="kvsim-web")
        self._slots = threading.BoundedSemaphore(limits.workers + limits.queue)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._slots.acquire(blocking=False):
            raise Busy
        try:
            fut = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _: self._slots.release())  # the slot frees when the work ends
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.limits.timeout_s)
        except TimeoutError:
            fut.cancel()  # drops it if still queued; a running thread finishes in the background
            raise TooSlow from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["BodyCap", "Busy", "TooSlow", "WebLimits", "WorkerPool"]
