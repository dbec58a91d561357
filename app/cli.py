"""`sleepcore app`: serve the Streamlit app (127.0.0.1 unless asked otherwise)."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path

MAIN = Path(__file__).resolve().parent / "main.py"


def register(sub) -> None:
    p = sub.add_parser("app", help="serve the explorer app in the browser")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port, default=8501, help="TCP port, 1 to 65535 (default 8501)")
    p.set_defaults(func=_serve)


def port(text: str) -> int:
    """An argparse type: a TCP port number, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, such as 8501; got {text!r}")
    return value


def check_address(host: str, port: int) -> None:
    """ValueError, before Streamlit starts (whose own failure is a traceback), unless `host` names an address of this
    machine and `port` is free there: the bind Streamlit's server will make (IPv4 unless the host holds a ':', with
    SO_REUSEADDR off Windows), tried and released."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if os.name != "nt":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except (socket.gaierror, UnicodeError) as e:
            raise ValueError(
                f"--host {host!r} is not an address this machine can serve on ({e}); the default is 127.0.0.1"
            ) from None
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ValueError(
                    f"port {port} is in use on {host}: another server holds it; give another --port"
                ) from None
            raise ValueError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def _serve(args) -> int:
    check_address(args.host, args.port)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    print(f"sleepcore app: serving on http://{args.host}:{args.port}", flush=True)
    os.execv(sys.executable, cmd)
