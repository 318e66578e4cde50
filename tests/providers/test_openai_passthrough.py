"""OpenAI streams relayed to OpenAI clients: events sent as they came, read only where they matter."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from omnigate.chat.models import StreamChunk, Usage
from omnigate.errors import UpstreamError
from omnigate.providers.openai_passthrough import is_plain, passthrough_chunks
from omnigate.providers.openai_wire import StreamParser
from tests.chat.conftest import Pieces

USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 3,
    "total_tokens": 12,
    "prompt_tokens_details": {"cached_tokens": 4},
}


def event(delta: dict[str, Any] | None, finish: str | None = None, **fields: Any) -> bytes:
    doc: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "gpt-x",
    }
    doc["system_fingerprint"] = "fp_1"
    doc["choices"] = (
        [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    doc["usage"] = None
    doc.update(fields)
    return b"data: " + orjson.dumps(doc) + b"\n\n"


DONE = b"data: [DONE]\n\n"


async def relay(
    *pieces: bytes,
) -> tuple[list[StreamChunk], list[tuple[str, str | None]], BaseException | None]:
    """The chunks of a stream read in ``pieces``, the names reported, and what it raised."""
    names: list[tuple[str, str | None]] = []
    chunks: list[StreamChunk] = []
    response = SimpleNamespace(content=Pieces(*pieces))
    parser = StreamParser("openai", ["sk-secret"])

    def named(ident: str, model: str | None) -> None:
        assert not chunks, "named before the first chunk"
        names.append((ident, model))

    try:
        async for chunk in passthrough_chunks("openai", response, parser, named):  # type: ignore[arg-type]
            chunks.append(chunk)
    except UpstreamError as error:
        return chunks, names, error
    return chunks, names, None


def raw(chunks: list[StreamChunk]) -> bytes:
    return b"".join(chunk.raw for chunk in chunks)


async def test_events_go_out_as_sent_and_usage_comes_once_at_the_end() -> None:
    opening = event({"role": "assistant", "content": "", "refusal": None})
    words = [event({"content": word}, obfuscation="xy") for word in ("one ", "two")]
    finish = event({}, "stop")
    usage = event(None, usage=USAGE)
    chunks, names, error = await relay(opening + words[0], words[1] + finish + usage + DONE)
    assert error is None
    assert names == [("chatcmpl-1", "gpt-x")]
    assert raw(chunks) == opening + words[0] + words[1] + finish, "usage and [DONE] are the surface's to send"
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["stop"]
    assert chunks[-1] == StreamChunk(usage=Usage(input_tokens=9, output_tokens=3, cache_read_tokens=4))
    assert len([chunk for chunk in chunks if chunk.usage]) == 1


async def test_a_prelude_without_an_id_is_held_until_the_id_is_known() -> None:
    prelude = (
        b'data: {"id":"","object":"","created":0,"model":"","choices":[],"prompt_filter_results":[]}\n\n'
    )
    first = event({"role": "assistant", "content": ""})
    chunks, names, _ = await relay(prelude, first + event({"content": "hi"}, "stop") + DONE)
    assert names == [("chatcmpl-1", "gpt-x")]
    assert raw(chunks).startswith(prelude + first), "the prelude goes out too, in order, once the id is known"


async def test_usage_riding_on_content_is_kept_back_and_the_content_rendered() -> None:
    # Servers reporting usage on every chunk (continuous usage stats) still bill once, from the last one.
    first = event({"role": "assistant", "content": ""})
    middle = event({"content": "hey"}, usage={**USAGE, "completion_tokens": 1})
    last = event({}, "stop", usage=USAGE)
    chunks, _, error = await relay(first + middle + last + DONE)
    assert error is None
    assert b'"usage":{' not in raw(chunks)
    assert [(c.text, c.finish_reason) for c in chunks if not c.raw and not c.usage] == [
        ("hey", None),
        (None, "stop"),
    ]
    assert [c.usage.output_tokens for c in chunks if c.usage] == [3]


async def test_json_with_other_spacing_is_read_not_trusted() -> None:
    spaced = b'data: {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}], "usage": {"prompt_tokens": 2, "completion_tokens": 5}}\n\n'
    chunks, _, _ = await relay(event({"content": "x"}) + spaced + DONE)
    assert [c.usage.output_tokens for c in chunks if c.usage] == [5]
    assert "a" in [c.text for c in chunks]


async def test_an_error_event_raises_after_the_events_before_it_went_out() -> None:
    first, word = event({"role": "assistant", "content": ""}), event({"content": "partial"})
    failure = b'data: {"error":{"message":"overloaded, key sk-secret","type":"server_error"}}\n\n'
    chunks, _, error = await relay(first + word + failure + event({"content": "never"}) + DONE)
    assert raw(chunks) == first + word
    assert isinstance(error, UpstreamError) and error.code == "upstream_stream_error"
    assert "sk-secret" not in str(error)


async def test_a_stream_without_done_is_truncated_after_relaying_what_came() -> None:
    first, word = event({"role": "assistant", "content": ""}), event({"content": "cut"})
    chunks, _, error = await relay(first, word)
    assert raw(chunks) == first + word
    assert isinstance(error, UpstreamError) and error.code == "upstream_stream_truncated"


async def test_crlf_comments_and_split_reads() -> None:
    body = (
        event({"role": "assistant", "content": ""})
        + b": keep-alive\n\n"
        + event({"content": "z"}, "length")
        + DONE
    )
    crlf = body.replace(b"\n", b"\r\n")
    cut = len(crlf) // 2 + 1
    chunks, _, error = await relay(crlf[:cut], crlf[cut:])
    assert error is None
    assert b"\r" not in raw(chunks) and b"keep-alive" not in raw(chunks)
    assert raw(chunks) == event({"role": "assistant", "content": ""}) + event({"content": "z"}, "length")
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["length"]


@pytest.mark.parametrize(
    ("block", "plain"),
    [
        (event({"content": "a"}), True),
        (event({"content": "a"}, obfuscation="q"), True),
        (event({}, "stop"), False),
        (event(None, usage=USAGE), False),
        # Quotes inside strings are escaped: the text cannot pose as the keys.
        (event({"content": 'he wrote "finish_reason":null'}, "stop"), False),
        (event({"content": 'x "usage":null "usage":{'}, usage=USAGE), False),
        (event({"content": 'say "error'}), False),  # the closing quote makes "error": read, to be safe
        (b'data: {"choices":[{"finish_reason":null}]}\ndata: {"x":1}\n\n', False),
        (b'event: delta\ndata: {"choices":[{"finish_reason":null}]}\n\n', False),
    ],
)
def test_only_unfinished_compact_single_line_events_skip_the_parser(block: bytes, plain: bool) -> None:
    assert is_plain(block.removesuffix(b"\n\n")) is plain


async def test_the_first_read_goes_out_without_waiting_for_the_next() -> None:
    body = Pieces(event({"role": "assistant", "content": ""}), event({"content": "later"}, "stop") + DONE)
    parser = StreamParser("openai")
    chunks = passthrough_chunks("openai", SimpleNamespace(content=body), parser, lambda ident, model: None)  # type: ignore[arg-type]
    first = await anext(chunks)
    assert first.raw == event({"role": "assistant", "content": ""})
    assert len(body.pieces) == 1, "the second read has not been waited for"
    await chunks.aclose()


async def test_an_upstream_without_ids_still_streams_read_by_read() -> None:
    def anonymous(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return event(delta, finish).replace(b'"id":"chatcmpl-1",', b"")

    body = Pieces(anonymous({"role": "assistant", "content": ""}), anonymous({"content": "x"}, "stop") + DONE)
    names: list[tuple[str, str | None]] = []
    parser = StreamParser("openai")
    chunks = passthrough_chunks(
        "openai", SimpleNamespace(content=body), parser, lambda ident, model: names.append((ident, model))
    )  # type: ignore[arg-type]
    first = await anext(chunks)
    assert first.raw == anonymous({"role": "assistant", "content": ""}) and len(body.pieces) == 1
    assert names == [("", "gpt-x")]
    rest = [chunk async for chunk in chunks]
    assert [c.finish_reason for c in rest if c.finish_reason] == ["stop"]
