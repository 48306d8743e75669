"""Identifying the uid on the other end of a loopback connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from lambdalite.sandbox import peers


def test_peer_uid_of_our_own_connection() -> None:
    assert peers.lookups_work()
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            server = socket.socket(family)
            server.bind((host, 0))
        except OSError:
            continue  # no IPv6 loopback here
        with server, socket.socket(family) as client:
            server.listen(1)
            client.connect(server.getsockname()[:2])
            accepted, _ = server.accept()
            with accepted:
                assert peers.peer_uid(accepted) == os.geteuid()


def test_peer_uid_of_another_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("connecting as another uid needs root")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(20)
        port = server.getsockname()[1]
        child = textwrap.dedent(
            f"""
            import os, socket
            os.setgid(54321); os.setuid(54321)  # the socket is owned by who creates it
            s = socket.socket()
            s.connect((b"127.0.0.1", {port}))
            s.recv(1)
            """
        )
        proc = subprocess.Popen([sys.executable, "-c", child])
        try:
            accepted, _ = server.accept()
            with accepted:
                assert peers.peer_uid(accepted) == 54321
                accepted.sendall(b"x")
        finally:
            proc.wait(timeout=10)


def test_unknown_peers() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert peers.peer_uid(left) is None  # not TCP: nothing to look up
