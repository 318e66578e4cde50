"""`python -m omnigate` runs the CLI."""

from omnigate.cli import main

raise SystemExit(main())
