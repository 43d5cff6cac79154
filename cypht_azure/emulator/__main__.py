"""``python -m cypht_azure.emulator --state-dir DIR [--port N] [--bind ADDR] [--host NAME]... [--sign-in MODE]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .service import EmulatorStartError, serve
from .signin import SIGN_IN_MODES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m cypht_azure.emulator",
                                     description="Local Microsoft identity platform + Microsoft Graph emulator.")
    parser.add_argument("--state-dir", type=Path, required=True, help="folder for state, certificates, emulator.json")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--host", dest="hosts", action="append", default=[], metavar="NAME",
                        help="an extra name for the TLS certificate (repeatable)")
    parser.add_argument("--sign-in", choices=SIGN_IN_MODES, default="page", help="page (default) or auto")
    args = parser.parse_args(argv)
    try:
        serve(args.state_dir, port=args.port, bind=args.bind, hosts=args.hosts, sign_in=args.sign_in)
    except EmulatorStartError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
