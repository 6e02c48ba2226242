"""A TCP proxy for database outages in tests: the service reaches PostgreSQL through it, and a
test cuts it.

`TcpProxy(host, port)` listens on a free loopback port and forwards each connection to the
target, a thread per direction. `cut(mode)` resets every connection it carries and, until
`restore()`, meets new ones as a lost server would: "refuse" resets them at once (a server that
is down), "blackhole" accepts them and never answers (a network that drops packets: only the
client's connect timeout ends the wait). `outage(seconds, mode)` is a cut that restores itself.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Literal

Mode = Literal["refuse", "blackhole"]


def _reset(sock: socket.socket) -> None:
    """Close `sock` with a TCP reset (SO_LINGER 0), as a dead peer's kernel would answer."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # every socket of a forwarded connection
        self._held: list[socket.socket] = []  # connections accepted during a blackhole cut
        self._mode: Mode | None = None
        self.connections = 0  # forwarded so far
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self._mode
                if mode == "blackhole":
                    self._held.append(client)
                    continue
            if mode == "refuse":
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    known = sock in self._open
                    self._open.discard(sock)
                if known:
                    _reset(sock)

    def cut(self, mode: Mode = "refuse") -> None:
        """Reset every carried connection; meet new ones by `mode` until `restore()`."""
        with self._lock:
            self._mode = mode
            carried, self._open = self._open, set()
        for sock in carried:
            _reset(sock)

    def restore(self) -> None:
        """Forward new connections again (those held by a blackhole are reset)."""
        with self._lock:
            self._mode = None
            held, self._held = self._held, []
        for sock in held:
            _reset(sock)

    @contextmanager
    def outage(self, mode: Mode = "refuse") -> Iterator[None]:
        self.cut(mode)
        try:
            yield
        finally:
            self.restore()

    def cut_for(self, seconds: float, mode: Mode = "refuse") -> threading.Thread:
        """Cut now and restore after `seconds`, in a thread of its own (returned, started)."""
        self.cut(mode)

        def later() -> None:
            time.sleep(seconds)
            self.restore()

        thread = threading.Thread(target=later, name="tcp-proxy-restore", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()
        self.restore()
