"""The SDK's version (the SDK is released on its own, independently of the server)."""

__version__ = "0.1.0"
