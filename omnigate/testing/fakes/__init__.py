"""Fake upstream LLM servers (OpenAI, Azure OpenAI, Anthropic, Gemini) speaking the real wire formats."""

from omnigate.testing.fakes.anthropic_fake import FakeAnthropic
from omnigate.testing.fakes.azure_fake import FakeAzureOpenAI
from omnigate.testing.fakes.gemini_fake import FakeGemini
from omnigate.testing.fakes.openai_fake import FakeOpenAI
from omnigate.testing.fakes.script import (
    DEFAULT_INPUT_OVERHEAD,
    RecordedRequest,
    Reply,
    ToolCall,
    Usage,
    default_usage,
)
from omnigate.testing.fakes.server import Call, FakeUpstream

#: Fake classes by provider name (as used on the command line).
FAKES: dict[str, type[FakeUpstream]] = {
    "openai": FakeOpenAI,
    "azure": FakeAzureOpenAI,
    "anthropic": FakeAnthropic,
    "gemini": FakeGemini,
}

__all__ = [
    "DEFAULT_INPUT_OVERHEAD",
    "FAKES",
    "Call",
    "FakeAnthropic",
    "FakeAzureOpenAI",
    "FakeGemini",
    "FakeOpenAI",
    "FakeUpstream",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "Usage",
    "default_usage",
]
