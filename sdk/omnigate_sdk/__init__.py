"""omnigate-sdk: typed sync and async clients for the omnigate LLM API gateway."""

from omnigate_sdk._client import AsyncClient, Client
from omnigate_sdk._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    OmnigateSDKError,
    PermissionDeniedError,
    RateLimitError,
)
from omnigate_sdk._models._base import OmnigateModel
from omnigate_sdk._models.admin import CreatedProject, Organization, Project
from omnigate_sdk._models.catalog import Model, ModelPricing
from omnigate_sdk._models.chat import (
    ChatMessage,
    ChatResponse,
    ChatUsage,
    ChunkDelta,
    ErrorDetail,
    FunctionCall,
    MessageParam,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
)
from omnigate_sdk._models.credentials import ProviderCredential
from omnigate_sdk._models.keys import APIKey, CreatedAPIKey
from omnigate_sdk._models.metrics import (
    LatencyPercentiles,
    MetricsBucket,
    MetricsGroup,
    MetricsReport,
    MetricsScope,
    MetricsStats,
)
from omnigate_sdk._streaming import AsyncChatStream, ChatStream
from omnigate_sdk._types import NOT_GIVEN, NotGiven
from omnigate_sdk._version import __version__

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIKey",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ChatMessage",
    "ChatResponse",
    "ChatStream",
    "ChatUsage",
    "ChunkDelta",
    "Client",
    "ConflictError",
    "CreatedAPIKey",
    "CreatedProject",
    "ErrorDetail",
    "FunctionCall",
    "InternalServerError",
    "LatencyPercentiles",
    "MessageParam",
    "MetricsBucket",
    "MetricsGroup",
    "MetricsReport",
    "MetricsScope",
    "MetricsStats",
    "Model",
    "ModelPricing",
    "NotFoundError",
    "NotGiven",
    "OmnigateModel",
    "OmnigateSDKError",
    "Organization",
    "PermissionDeniedError",
    "Project",
    "ProviderCredential",
    "RateLimitError",
    "StreamChunk",
    "ToolCall",
    "ToolCallDelta",
    "__version__",
]
