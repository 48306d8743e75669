"""Helpers for the floors, run under the function runtime's own interpreter.

``fork``: a warm Python parent (standard library modules a runtime client needs already
imported, ``gc.freeze()`` called) that forks a child for every byte it reads on stdin; the
child answers one byte on stdout and exits. The time from the byte sent to the answer read
is the floor for starting an environment by forking a prepared parent.

``echo``: a TCP echo of single bytes on a loopback port (printed on stdout), for the
loopback round-trip floor between two processes.

Kept free of third-party imports and of syntax newer than Python 3.9.
"""

import gc
import http.client  # noqa: F401 - part of the warm parent's state, like a runtime client's
import json  # noqa: F401
import os
import socket
import sys


def fork_server() -> None:
    gc.freeze()
    while True:
        if not os.read(0, 1):
            return
        pid = os.fork()
        if pid == 0:
            os.write(1, b"r")
            os._exit(0)
        os.waitpid(pid, 0)


def echo_server() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        sys.stdout.write(f"{listener.getsockname()[1]}\n")
        sys.stdout.flush()
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while True:
                data = conn.recv(64)
                if not data:
                    return
                conn.sendall(data)


if __name__ == "__main__":
    {"fork": fork_server, "echo": echo_server}[sys.argv[1]]()
