"""Built-in policy plugins: rate limit, budget, response cache, fallback, circuit breaker, retry."""
