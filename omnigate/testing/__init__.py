"""Test helpers shipped with omnigate: fake upstream provider servers for gateway and plugin tests."""

from omnigate.testing.fakes import (
    FAKES,
    FakeAnthropic,
    FakeAzureOpenAI,
    FakeGemini,
    FakeOpenAI,
    FakeUpstream,
    RecordedRequest,
    Reply,
    ToolCall,
    Usage,
)

__all__ = [
    "FAKES",
    "FakeAnthropic",
    "FakeAzureOpenAI",
    "FakeGemini",
    "FakeOpenAI",
    "FakeUpstream",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "Usage",
]
