"""Benchmark harness: per-request overhead of omnigate measured against pass-through floors."""
