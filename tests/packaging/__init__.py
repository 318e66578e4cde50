"""Packaging: the container files, the compose stack and third-party plugin discovery."""
