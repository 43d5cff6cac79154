"""``python -m cypht_azure.emulator --state-dir DIR [--port N] [--host H]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .service import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cypht_azure.emulator",
                                     description="Local Microsoft identity platform + Microsoft Graph emulator.")
    parser.add_argument("--state-dir", type=Path, required=True, help="folder for state, certificates, emulator.json")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    args = parser.parse_args(argv)
    serve(args.state_dir, port=args.port, host=args.host)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
