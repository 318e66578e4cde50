"""Prometheus metrics: collectors fed by the request observer, and the ``/metrics`` endpoint."""

from omnigate.metrics.collectors import GatewayMetrics

__all__ = ["GatewayMetrics"]
