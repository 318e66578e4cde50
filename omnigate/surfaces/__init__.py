"""Client-facing chat formats: OpenAI-compatible and omnigate's native one, rendered from the unified types."""
