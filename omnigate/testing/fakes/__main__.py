"""Run one fake upstream from the command line: ``python -m omnigate.testing.fakes openai --port 9000``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from omnigate.testing.fakes import FAKES


async def _serve(provider: str, host: str, port: int, api_key: str | None) -> None:
    fake = FAKES[provider](api_key=api_key, host=host, port=port)
    fake.max_records = 1000  # long benchmark runs must not grow without bound
    base_url = await fake.start()
    print(f"{provider} fake listening; base URL: {base_url}", flush=True)
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m omnigate.testing.fakes", description=__doc__)
    parser.add_argument("provider", choices=sorted(FAKES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--api-key", default=None, help="require exactly this key (default: any)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.provider, args.host, args.port, args.api_key))


if __name__ == "__main__":
    main()
