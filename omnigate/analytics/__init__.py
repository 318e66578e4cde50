"""Usage analytics over the stored usage records: ``/v1/metrics`` and ``/v1/admin/orgs/{id}/metrics``."""
