"""Worst-case token estimate of a chat request, before it is sent: what budgets and TPM reserve."""

from __future__ import annotations

import orjson

from omnigate.chat.models import ChatRequest, ImagePart, Usage
from omnigate.plugin.interfaces import Call

# Tokenizers average about 4 bytes of English per token and 1 token per CJK character (3 UTF-8
# bytes); counting 1 token per 3 bytes over-estimates the first and matches the second.
BYTES_PER_TOKEN = 3
PER_MESSAGE_TOKENS = 4  # role and separators, as in OpenAI's chat format (3) plus one
PRIMING_TOKENS = 3  # the assistant turn the model is primed with
# Images are billed by size and model: OpenAI ≤ 765 (gpt-4o, high detail, 2048 px), Anthropic ≤ ~1,600,
# Gemini 258 per 768 px tile; 3,000 covers these. gpt-4o-mini meters images at ~33x those token
# counts (at a lower price): there the estimate is low and the settlement corrects to the real cost.
IMAGE_TOKENS = 3_000
_ESTIMATE = "estimate.worst_case"  # call.state key: (request, default_cap, usage)


def _tokens(byte_count: int) -> int:
    return -(-byte_count // BYTES_PER_TOKEN)


def prompt_tokens(request: ChatRequest) -> int:
    """Input tokens, estimated from the bytes of everything that becomes prompt text."""
    size = 0
    images = 0
    for message in request.messages:
        if isinstance(message.content, str):
            size += len(message.content.encode())
        elif message.content is not None:
            for part in message.content:
                if isinstance(part, ImagePart):
                    images += 1
                else:
                    size += len(part.text.encode())
        if message.name:
            size += len(message.name.encode())
        for call in message.tool_calls or ():
            size += len(call.id.encode()) + len(call.function.name.encode())
            size += len(call.function.arguments.encode())
        if message.tool_call_id:
            size += len(message.tool_call_id.encode())
    for tool in request.tools or ():
        function = tool.function
        size += len(function.name.encode()) + len((function.description or "").encode())
        if function.parameters is not None:
            size += len(orjson.dumps(function.parameters))
    if request.response_format is not None:
        size += len(orjson.dumps(request.response_format))
    overhead = PRIMING_TOKENS + PER_MESSAGE_TOKENS * len(request.messages)
    return _tokens(size) + overhead + IMAGE_TOKENS * images


def output_tokens(request: ChatRequest, default_cap: int) -> int:
    """The most output the request can produce: its cap (or ``default_cap``) for each of its ``n`` choices."""
    cap = request.output_cap if request.output_cap is not None else default_cap
    return max(cap, 0) * max(request.n or 1, 1)


def worst_case_usage(request: ChatRequest, default_cap: int) -> Usage:
    """The usage a reservation assumes: estimated prompt, full output cap, nothing read from cache."""
    return Usage(input_tokens=prompt_tokens(request), output_tokens=output_tokens(request, default_cap))


def call_worst_case_usage(call: Call, default_cap: int) -> Usage:
    """``worst_case_usage`` of the call's request, estimated once per call (rate limits and budgets
    both reserve it)."""
    known = call.state.get(_ESTIMATE)
    if known is not None and known[0] is call.request and known[1] == default_cap:
        return known[2]  # type: ignore[no-any-return]
    usage = worst_case_usage(call.request, default_cap)
    call.state[_ESTIMATE] = (call.request, default_cap, usage)
    return usage
