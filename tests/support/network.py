"""Network endpoints for exporters: a healthy sink and two broken collectors.

Two failures behave very differently for a client: a *closed port* refuses the connection at
once, while a *black hole* (a host that accepts connections and never answers, like a hung
collector or a firewall dropping packets after the handshake) makes every request wait for
its full timeout. Instrumentation must survive both without slowing the application.
:class:`OtlpSink` is the healthy reference: it answers every export at once without decoding
it, as a collector on another host would, so that it takes no CPU from the application.
"""

from __future__ import annotations

import abc
import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support.processes import free_port as closed_port

__all__ = ["BlackHole", "OtlpSink", "closed_port"]


class _Endpoint(contextlib.AbstractContextManager["_Endpoint"]):
    """A local server for an exporter, stopped by :meth:`close` or leaving a ``with`` block."""

    endpoint: str

    @abc.abstractmethod
    def close(self) -> None: ...

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _SinkServer(ThreadingHTTPServer):
    def __init__(self, keep: Callable[[str, bytes], None] | None) -> None:
        super().__init__(("127.0.0.1", 0), _Accept)
        self.keep = keep


class _Accept(BaseHTTPRequestHandler):
    server: _SinkServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.keep is not None:
            self.server.keep(self.path, body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: one line per export would drown the output."""


class OtlpSink(_Endpoint):
    """Accepts every OTLP/HTTP export with an empty success response, decoding nothing.

    ``keep``, if given, is handed each request's path and (undecoded) body before the answer.
    """

    def __init__(self, keep: Callable[[str, bytes], None] | None = None) -> None:
        self._server = _SinkServer(keep)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-sink", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class BlackHole(_Endpoint):
    """A TCP server that accepts every connection, never reads and never answers.

    Use as a context manager; ``endpoint`` is an ``http://`` URL for an exporter.
    """

    def __init__(self) -> None:
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port: int = self._server.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # closed by close()
                return
            self.connections += 1
            self._held.append(connection)

    def close(self) -> None:
        self._server.close()
        for connection in self._held:
            connection.close()
        self._thread.join(5)
