"""Server-sent events from ``/v1/chat`` as typed ``StreamChunk``s, for the sync and the async client.

The gateway sends delta chunks, then exactly one terminal chunk (``usage``, ``finish_reason``,
``cost_usd``), then ``data: [DONE]``; or, when the upstream fails after the stream began, an error
chunk, which is raised as the matching ``APIStatusError``. A stream that ends before its terminal
chunk raises ``APIConnectionError``: a truncated answer never looks like a complete one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType

import httpx
from pydantic import ValidationError

from omnigate_sdk._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    connection_error,
    status_error_from_stream,
)
from omnigate_sdk._models.chat import ChatUsage, StreamChunk

DONE = "[DONE]"


class SSEDecoder:
    """Turns lines (without terminators) into event data strings; comments and other fields are skipped."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """The event's data when ``line`` ends one (a blank line), else None."""
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        """The pending event's data, if any (a body may end without the final blank line)."""
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return data


class _StreamState:
    """What both stream classes know about one stream: the chunks seen so far and whether it ended well."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.request_id: str | None = response.headers.get("x-request-id")
        self.final: StreamChunk | None = None
        self.done = False
        self.pieces: list[str] = []

    def accept(self, data: str) -> StreamChunk | None:
        """The chunk in one event's data; None once ``[DONE]`` arrives; raises an in-stream error."""
        if data.strip() == DONE:
            self.done = True
            return None
        try:
            chunk = StreamChunk.model_validate(json.loads(data))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise APIResponseValidationError(
                f"a stream event is not a valid chunk: {exc}",
                status_code=self.response.status_code,
                request_id=self.request_id,
                request=self.response.request,
                response=self.response,
                body=data,
            ) from None
        if chunk.error is not None:
            raise status_error_from_stream(
                chunk.error.model_dump(),
                request_id=chunk.request_id or self.request_id,
                response=self.response,
            )
        if chunk.usage is not None:
            self.final = chunk
        if chunk.delta is not None and chunk.delta.content:
            self.pieces.append(chunk.delta.content)
        return chunk

    def check_complete(self) -> None:
        if self.final is None:
            raise APIConnectionError(
                "the stream ended before its final usage chunk (the answer is incomplete)",
                request_id=self.request_id,
                request=self.response.request,
                response=self.response,
            )


class _StreamView:
    """Read-only facts about a stream, shared by the sync and async classes."""

    _state: _StreamState

    @property
    def response(self) -> httpx.Response:
        return self._state.response

    @property
    def response_headers(self) -> httpx.Headers:
        """The response headers: request id, budget and rate-limit headers."""
        return self._state.response.headers

    @property
    def request_id(self) -> str | None:
        return self._state.request_id

    @property
    def text(self) -> str:
        """The content received so far."""
        return "".join(self._state.pieces)

    @property
    def final_chunk(self) -> StreamChunk | None:
        """The terminal chunk, once it has arrived."""
        return self._state.final

    @property
    def usage(self) -> ChatUsage | None:
        return self._state.final.usage if self._state.final is not None else None


class ChatStream(_StreamView):
    """A streamed answer: iterate for ``StreamChunk``s; use as a context manager to always release it."""

    def __init__(self, response: httpx.Response) -> None:
        self._state = _StreamState(response)
        self._iterator = self._iterate()

    def __iter__(self) -> Iterator[StreamChunk]:
        return self._iterator

    def __next__(self) -> StreamChunk:
        return next(self._iterator)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the connection (safe to call more than once)."""
        self._iterator.close()
        self._state.response.close()

    def until_done(self) -> StreamChunk:
        """Read the rest of the stream and return its terminal chunk (usage, finish reason, cost)."""
        for _ in self._iterator:
            pass
        self._state.check_complete()
        assert self._state.final is not None
        return self._state.final

    def _iterate(self) -> Generator[StreamChunk, None, None]:
        decoder = SSEDecoder()
        try:
            for line in self._state.response.iter_lines():
                data = decoder.feed(line)
                if data is None:
                    continue
                chunk = self._state.accept(data)
                if chunk is None:
                    break
                yield chunk
            else:
                tail = decoder.flush()
                chunk = self._state.accept(tail) if tail is not None else None
                if chunk is not None:
                    yield chunk
            self._state.check_complete()
        except httpx.HTTPError as exc:
            raise connection_error(exc, self._state.response.request) from exc
        finally:
            self._state.response.close()


class AsyncChatStream(_StreamView):
    """The async twin of ``ChatStream``: ``async for`` chunks, ``async with`` to always release it."""

    def __init__(self, response: httpx.Response) -> None:
        self._state = _StreamState(response)
        self._iterator = self._iterate()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._iterator

    async def __anext__(self) -> StreamChunk:
        return await anext(self._iterator)

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reading and release the connection (safe to call more than once)."""
        await self._iterator.aclose()
        await self._state.response.aclose()

    async def until_done(self) -> StreamChunk:
        """Read the rest of the stream and return its terminal chunk (usage, finish reason, cost)."""
        async for _ in self._iterator:
            pass
        self._state.check_complete()
        assert self._state.final is not None
        return self._state.final

    async def _iterate(self) -> AsyncGenerator[StreamChunk, None]:
        decoder = SSEDecoder()
        try:
            async for line in self._state.response.aiter_lines():
                data = decoder.feed(line)
                if data is None:
                    continue
                chunk = self._state.accept(data)
                if chunk is None:
                    break
                yield chunk
            else:
                tail = decoder.flush()
                chunk = self._state.accept(tail) if tail is not None else None
                if chunk is not None:
                    yield chunk
            self._state.check_complete()
        except httpx.HTTPError as exc:
            raise connection_error(exc, self._state.response.request) from exc
        finally:
            await self._state.response.aclose()
