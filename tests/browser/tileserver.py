"""A local tile server for the browser tests: a few small PNG tiles from a folder, over HTTP.

Any ``/tiles/{z}/{x}/{y}.png`` is answered with one of two plain tiles (a checkerboard by
``x + y``), so a map at any place and zoom gets its base layer without any request leaving
the machine. Every request is recorded, so a test can tell that the map really asked it.
"""
from __future__ import annotations

import re
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TILE_SIZE = 256
# Two pale colours no portal layer uses: a test can find them in a screenshot or a pixel read.
TILE_COLOURS = ((0xF2, 0xEF, 0xE6), (0xE4, 0xEC, 0xF2))
_TILE_PATH = re.compile(r"/tiles/(\d{1,2})/(\d+)/(\d+)\.png")


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """Return a PNG of one colour (no imaging library needed)."""
    row = b"\x00" + bytes(rgb) * width
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))


class TileServer:
    """Serve the tiles of ``folder`` on 127.0.0.1 in a thread; ``url`` is the template for Leaflet."""

    def __init__(self, folder: Path):
        """Write the tiles into ``folder`` and bind a free port (not yet serving)."""
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for n, rgb in enumerate(TILE_COLOURS):
            (folder / f"{n}.png").write_bytes(png(TILE_SIZE, TILE_SIZE, rgb))
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 -- the http.server interface
                match = _TILE_PATH.fullmatch(self.path.split("?")[0])
                if not match:
                    self.send_error(404)
                    return
                server.requests.append(self.path)
                _z, x, y = (int(v) for v in match.groups())
                body = (server.folder / f"{(x + y) % 2}.png").read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=3600")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.url = self.origin + "/tiles/{z}/{x}/{y}.png"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> TileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
