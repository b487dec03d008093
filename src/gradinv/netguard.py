"""Fail loudly on hidden downloads: with ``GRADINV_BLOCK_NETWORK=1`` any connection to a
non-loopback address raises, so code that fetches data or weights at run time is caught
(tests and CI set it; unit tests additionally use pytest-socket)."""

from __future__ import annotations

import ipaddress
import os
import socket

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
    elif isinstance(address, str | bytes):  # a unix socket path
        return True
    else:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install() -> None:
    """Patch ``socket.socket.connect`` to refuse non-loopback addresses."""
    if getattr(socket.socket.connect, "_gradinv_guard", False):
        return
    original = socket.socket.connect

    def connect(self: socket.socket, address: object) -> None:
        if not _is_loopback(address):
            raise ConnectionRefusedError(
                f"gradinv: network access to {address!r} is blocked (GRADINV_BLOCK_NETWORK=1): "
                "nothing may download at run time; run `gradinv assets` to build offline assets"
            )
        return original(self, address)

    connect._gradinv_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = connect  # type: ignore[method-assign]


if os.environ.get("GRADINV_BLOCK_NETWORK") == "1":
    install()
