"""End-to-end chat tests: gateway + fake upstreams over real sockets."""
