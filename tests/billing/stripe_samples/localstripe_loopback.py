"""Run localstripe like `localstripe --port N --from-scratch`, but listening on 127.0.0.1 only.

The `localstripe` command binds every interface (IPv6 `::`) and writes its state to a file in the temp folder on
every change; the tests want neither, so this runs the same aiohttp app on the loopback address and keeps the
state in memory only.
"""

from __future__ import annotations

import argparse

from aiohttp import web
from localstripe import server
from localstripe.resources import store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--from-scratch", action="store_true", help="accepted for parity: state is never loaded")
    args = parser.parse_args()
    store.dump_to_disk = lambda: None
    web.run_app(server.app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
