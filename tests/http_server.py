"""A loopback HTTP file server for download tests: serves bytes by path, honours Range, counts requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    ranges_supported: bool = True
    truncate_after: int | None = None  # close the connection after this many body bytes (simulate a drop)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    base_url: str = ""


@contextmanager
def serve(server_state: FileServer) -> Iterator[FileServer]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            server_state.requests.append((self.path, range_header))
            body = server_state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if range_header and server_state.ranges_supported:
                start = int(range_header.split("=")[1].split("-")[0])
                chunk = body[start:]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                chunk = body
                self.send_response(200)
            if server_state.truncate_after is not None:
                chunk = chunk[: server_state.truncate_after]
                server_state.truncate_after = None
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(chunk)
                self.wfile.flush()
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            self.wfile.write(chunk)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
