"""What the response cache may store, and its key: the project plus a canonical hash of the request."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from omnigate.chat.models import ChatRequest, Target
from omnigate.chat.validate import CHAT_FIELDS
from omnigate.converter import converter

KEY_VERSION = "v1"
# Fields that never change what the upstream answers: delivery (stream), omnigate's own options
# (fallbacks, cache, metadata are not sent upstream), and the model name (the resolved target is used).
NOT_IN_KEY = frozenset({"model", "stream", "stream_options", "fallback_models", "cache", "metadata", "raw"})


def is_deterministic(request: ChatRequest) -> bool:
    """A request is cacheable when it is not streamed, asks for one choice, and either samples
    greedily (``temperature`` explicitly 0) or fixes a ``seed``.

    An absent temperature means the provider's default (usually 1), so it is not deterministic.
    Tools are allowed: the gateway never runs them, so a cached tool call has no side effect of its
    own; the client runs it exactly as it would run a fresh one.
    """
    if request.stream or request.n not in (None, 1):
        return False
    return request.temperature == 0 or request.seed is not None


def canonical_request(target: Target, request: ChatRequest) -> bytes:
    """Sorted-key JSON of everything that shapes the answer: the resolved target, the validated fields
    (messages, tools, sampling, response format, ...) and any extra top-level field passed upstream."""
    fields: dict[str, Any] = {
        name: value for name, value in converter.unstructure(request).items() if name not in NOT_IN_KEY
    }
    extra = {name: value for name, value in request.raw.items() if name not in CHAT_FIELDS}
    document = {"target": [target.provider, target.model], "fields": fields, "extra": extra}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def cache_key(project_id: str, target: Target, request: ChatRequest) -> str:
    """``rc:v1:<project>:<sha256>``: one project's entry can never be read with another project's key."""
    digest = hashlib.sha256(canonical_request(target, request)).hexdigest()
    return f"rc:{KEY_VERSION}:{project_id}:{digest}"
