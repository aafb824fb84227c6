"""A stand-in for your application: it talks to the llm-edge-agent sidecar, never to a vendor.

Standard library only, so it runs on a stock ``python:3.12-slim`` image. It shows the two
things a real app changes to use the sidecar: the base URL (the sidecar, on localhost in a
pod) and the "API key" (the sidecar's inbound token, not a vendor key). With the OpenAI SDK
that is ``OPENAI_BASE_URL=http://127.0.0.1:8787/v1`` and ``OPENAI_API_KEY=$LLM_EDGE_TOKEN``.

    GET  /          the models the sidecar routes (its GET /v1/models)
    POST /          the request body is a prompt; answers the completion and its cost
    GET  /healthz   200 while this process serves
"""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIDECAR = os.environ.get("LLM_EDGE_URL", "http://127.0.0.1:8787").rstrip("/")
TOKEN = os.environ.get("LLM_EDGE_TOKEN", "")
MODEL = os.environ.get("LLM_MODEL", "gpt-4o-mini")
PORT = int(os.environ.get("PORT", "8080"))


def call_sidecar(path: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to the sidecar; its error responses are passed through, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(SIDECAR + path, data=data)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=130) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply(200, b"ok\n", "text/plain")
        else:
            status, _, body = call_sidecar("/v1/models")
            self.reply(status, body, "application/json")

    def do_POST(self) -> None:
        prompt = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        messages = [{"role": "user", "content": prompt}]
        status, headers, body = call_sidecar(
            "/v1/chat/completions", {"model": MODEL, "messages": messages}
        )
        if status == 200:
            answer = json.loads(body)
            body = json.dumps(
                {
                    "reply": answer["choices"][0]["message"]["content"],
                    "cost_usd": headers.get("x-llm-cost-usd"),
                    "provider": headers.get("x-llm-provider"),
                }
            ).encode()
        self.reply(status, body, "application/json")

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = False  # so server_close() waits for requests still in flight
    # SIGTERM: stop accepting, finish what is in flight, exit (shutdown must run off-thread).
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"example app on :{PORT}, sidecar {SIDECAR}, model {MODEL}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
