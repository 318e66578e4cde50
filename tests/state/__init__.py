"""State backend tests."""
