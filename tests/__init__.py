"""Gateway test suite."""
