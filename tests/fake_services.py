"""A real HTTP server on loopback that speaks the contract of the ML engine and the data pipeline,
and can be told to be slow, to fail, to talk nonsense, or to be down."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeService:
    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 0.0
        self.embeddings_delay = 0.0  # the embeddings call only: a catalog is slower to embed
        self.recommendations: list[dict] = []
        self.embeddings: list[dict] = []
        self.embeddings_as_list = False  # the seed's shape: the list itself, not {"embeddings": [...]}
        self.recommendations_as_list = False  # the same for recommendations
        self.received: list[dict] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, path: str, body: dict) -> tuple[int, bytes]:
        if self.mode == "error":
            return 500, b'{"detail": "boom"}'
        if self.mode == "bad_request":
            return 422, b'{"detail": "no"}'
        if self.mode == "busy":
            return 429, b'{"detail": "slow down"}'
        if self.mode == "malformed":
            return 200, b"<html>not json</html>"
        if self.mode == "nested":  # JSON, but deeper than the decoder's recursion
            return 200, b"[" * 100_000 + b"]" * 100_000
        if self.mode == "empty":
            return 204, b""
        if self.mode == "misshapen":  # JSON, but not what the contract names
            return 200, json.dumps({"results": self.recommendations or self.embeddings}).encode()
        if path == "/internal/ml/recommendations":
            listed = (
                self.recommendations
                if self.recommendations_as_list
                else {"recommendations": self.recommendations}
            )
            return 200, json.dumps(listed).encode()
        if path == "/internal/ml/embeddings":
            shaped = self.embeddings if self.embeddings_as_list else {"embeddings": self.embeddings}
            return 200, json.dumps(shaped).encode()
        if path.startswith("/internal/pipeline/"):
            return 202, b'{"accepted": true}'
        return 404, b"{}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                service.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if service.delay:
                    time.sleep(service.delay)
                if service.embeddings_delay and self.path == "/internal/ml/embeddings":
                    time.sleep(service.embeddings_delay)
                status, payload = service.answer(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if service.mode == "trickle":  # a byte at a time, each well within a read timeout
                    try:
                        for byte in payload:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.1)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up, as it should
                    return
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def fake_service() -> Iterator[FakeService]:
    service = FakeService()
    service.start()
    try:
        yield service
    finally:
        service.stop()
