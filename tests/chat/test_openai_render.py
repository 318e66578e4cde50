"""OpenAI stream chunks are the bytes orjson writes for the whole chunk object, whatever the id or model holds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from omnigate.chat.models import StreamChunk, ToolCallDelta
from omnigate.gateway.sse import frame
from omnigate.surfaces.base import Reply
from omnigate.surfaces.openai import OpenAISurface


def whole(reply: Reply, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    payload = {
        "id": reply.id,
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "choices": [choice],
    }
    return frame(orjson.dumps(payload))


@pytest.mark.parametrize(
    ("completion_id", "model"),
    [("chatcmpl-1", "gpt-4o-mini"), ('id "quoted" \\ é', "model\n☃"), ("", "")],
)
def test_chunks_match_the_whole_object(completion_id: str, model: str) -> None:
    surface = OpenAISurface()
    reply = Reply(request_id="req", id=completion_id, model=model, provider="openai", created=1_764_000_000)
    assert surface.stream_start(reply) == whole(reply, {"role": "assistant", "content": "", "refusal": None})
    assert surface.stream_chunk(StreamChunk(text='a "b" ☃'), reply) == whole(reply, {"content": 'a "b" ☃'})
    tool = ToolCallDelta(index=1, id="call_1", name="get", arguments='{"a"')
    assert surface.stream_chunk(StreamChunk(tool_calls=(tool,), finish_reason="tool_calls"), reply) == whole(
        reply,
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_1",
                    "type": "function",
                    "function": {"arguments": '{"a"', "name": "get"},
                }
            ]
        },
    ) + whole(reply, {}, "tool_calls")
