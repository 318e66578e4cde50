"""The hot path: policy pipeline and dispatch. Never calls a pluggy hook per request."""
