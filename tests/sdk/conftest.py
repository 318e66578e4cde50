"""The chat fixtures (fake upstreams, a gateway environment wired to them) reused for the SDK's integration test."""

from tests.chat.conftest import chat_env, fakes

__all__ = ["chat_env", "fakes"]
