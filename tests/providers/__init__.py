"""Provider plugin tests against the fake upstreams."""
