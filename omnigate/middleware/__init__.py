"""Pure-ASGI middleware, one class per module; never BaseHTTPMiddleware."""
