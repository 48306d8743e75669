"""Who is on the other end of a loopback TCP connection: the owner uid of the peer's socket.

Environments sharing the host network reach their Runtime API over 127.0.0.1, where any local
process can connect to any port. Every namespace sandbox runs as a uid of its own, so the
Runtime API can tell its own runtime from a stranger by the uid that owns the connecting
socket. TCP carries no credentials; the kernel's socket diagnostics (``NETLINK_SOCK_DIAG``,
what ``ss`` uses) look the socket up by its address pair and report its owner, in one round
trip of a few microseconds.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

from lambdalite.sandbox.base import PeerSocket

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NO_COOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
# struct inet_diag_msg: family, state, timer, retrans, then the 48-byte socket id, expires,
# rqueue, wqueue, uid, inode.
_UID_OFFSET = _HEADER.size + 4 + 48 + 12


def _address(family: int, host: str) -> bytes:
    packed = socket.inet_pton(family, host)
    return packed + b"\0" * (16 - len(packed))


def _request(family: int, local: Any, remote: Any) -> bytes:
    """An inet_diag_req_v2 for the TCP socket bound to ``remote`` and connected to ``local``."""
    sock_id = (
        struct.pack("!HH", remote[1], local[1])
        + _address(family, remote[0])
        + _address(family, local[0])
        + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    )
    body = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sock_id
    return _HEADER.pack(_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + body


def peer_uid(conn: PeerSocket) -> int | None:
    """The uid owning the socket at the other end of ``conn`` (an accepted loopback TCP
    connection), or None when the kernel does not know it (peer gone, not local, no
    sock_diag support)."""
    family = conn.family
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        local, remote = conn.getsockname(), conn.getpeername()
        request = _request(family, local, remote)
        with socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG
        ) as diag:
            diag.settimeout(1.0)
            diag.send(request)
            reply = diag.recv(65536)
    except (OSError, ValueError, IndexError):
        return None
    if len(reply) < _UID_OFFSET + 4:
        return None
    _length, kind, _flags, _seq, _pid = _HEADER.unpack_from(reply)
    if kind == _NLMSG_ERROR:
        return None
    uid: int = struct.unpack_from("=I", reply, _UID_OFFSET)[0]
    return uid


def lookups_work() -> bool:
    """Whether ``peer_uid`` can identify a loopback peer on this host (checked once at start)."""
    try:
        with socket.socket() as server, socket.socket() as client:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            client.connect(server.getsockname())
            accepted, _ = server.accept()
            with accepted:
                return peer_uid(accepted) == os.geteuid()
    except OSError:
        return False
