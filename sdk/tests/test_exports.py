"""The public surface is deliberate: ``__all__`` is exactly the package's public names."""

from __future__ import annotations

import subprocess
import sys

import omnigate_sdk


def test_all_is_exactly_the_public_names() -> None:
    public = {name for name in vars(omnigate_sdk) if not name.startswith("_") or name == "__version__"}
    assert len(omnigate_sdk.__all__) == len(set(omnigate_sdk.__all__))
    assert set(omnigate_sdk.__all__) == public


def test_every_error_shares_one_base() -> None:
    errors = [getattr(omnigate_sdk, n) for n in omnigate_sdk.__all__ if n.endswith("Error")]
    assert len(errors) == 13
    assert all(issubclass(cls, omnigate_sdk.OmnigateSDKError) for cls in errors)
    assert issubclass(omnigate_sdk.APITimeoutError, omnigate_sdk.APIConnectionError)
    assert not issubclass(omnigate_sdk.BudgetExceededError, omnigate_sdk.RateLimitError)


def test_importing_the_sdk_never_loads_the_server() -> None:
    probe = (
        "import sys, omnigate_sdk\nprint(','.join(m for m in sys.modules if m.split('.')[0] == 'omnigate'))"
    )

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
