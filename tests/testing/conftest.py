"""Fixtures for the fake upstream tests: one started fake per provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from omnigate.testing.fakes import FakeAnthropic, FakeAzureOpenAI, FakeGemini, FakeOpenAI


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def azure_fake() -> AsyncIterator[FakeAzureOpenAI]:
    async with FakeAzureOpenAI(deployments={"chat": "gpt-4o-2024-11-20"}) as fake:
        yield fake


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def gemini_fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as fake:
        yield fake
