"""prometheus_client's multiprocess mode, so a scrape of any hypercorn worker reports every worker.

Each worker writes its counters, histograms and gauges to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR``; ``/metrics`` merges all of them. The variable must be set before the
workers start (the library picks its value class at import), so ``serve`` prepares the directory in
the parent process: an operator's directory is emptied, otherwise a private temporary one is created
for a multi-worker server and removed when it stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import values

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enabled() -> bool:
    """True when this process records metrics in the shared directory (decided when it started)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


@contextlib.contextmanager
def multiprocess_directory(workers: int) -> Iterator[str | None]:
    """Around the server's run: the directory workers share, or None for one worker and no directory set."""
    configured = os.environ.get(ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of a previous run would be added to this one's
            stale.unlink()
        yield configured
        return
    if workers <= 1:
        yield None
        return
    created = tempfile.mkdtemp(prefix="omnigate-metrics-")
    os.environ[ENV] = created
    try:
        yield created
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(created, ignore_errors=True)
