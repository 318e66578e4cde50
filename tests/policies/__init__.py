"""Policy plugin tests."""
