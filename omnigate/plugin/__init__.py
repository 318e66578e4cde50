"""The plugin API: hook markers and the entry-point group third-party plugins register under."""

import pluggy

PROJECT_NAME = "omnigate"
ENTRY_POINT_GROUP = "omnigate"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["ENTRY_POINT_GROUP", "PROJECT_NAME", "hookimpl", "hookspec"]
