"""The application object servers import (``omnigate.asgi:app``), built from the environment."""

from omnigate.app import create_app
from omnigate.settings import Settings

app = create_app(Settings.from_env(), server_process=True)
