"""omnigate: a self-hosted, multi-tenant LLM API gateway."""

from omnigate.plugin import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "hookspec"]
