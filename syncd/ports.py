"""Listening sockets for the commands that serve, bound before anything else starts, so that a
busy port is one line naming the option to change instead of uvicorn's traceback.
Imports nothing from syncd.
"""

from __future__ import annotations

import errno
import socket


class PortInUse(Exception):
    """Another process listens on the port; the message says which option picks another."""

    def __init__(self, port: int, option: str) -> None:
        super().__init__(f"port {port} is in use; pass {option} to use another")
        self.port = port


def listen(host: str, port: int, *, option: str) -> socket.socket:
    """A socket listening on host:port (0: any free port), ready to hand to uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # uvicorn sets the same: a port left in TIME_WAIT by the previous run is not "in use".
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(port, option) from None
        raise
    return sock


def address(sock: socket.socket) -> str:
    """The http:// address a listening socket answers on."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
