"""omnigate-ollama: an omnigate provider plugin for Ollama's native chat API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
