"""The management HTTP API (admin key): organisations and projects. Endpoints only; SQL lives in store/."""
