"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 (stdlib), scripted per test."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from videomind.backends.openai_compat import EndpointError, OpenAIChat


class _Server:
    def __init__(self, replies):
        self.replies, self.requests = list(replies), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, payload = outer.replies.pop(0) if outer.replies else (500, {})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def _ok(text):
    return 200, {"choices": [{"message": {"content": text}}], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}


@pytest.fixture
def server(request):
    s = _Server(request.param)
    yield s
    s.close()


@pytest.mark.parametrize("server", [[(503, {"error": "busy"}), (429, {}), _ok("hello")]], indirect=True)
def test_retries_with_backoff_then_succeeds(server):
    chat = OpenAIChat(server.url, "m", api_key="k", retries=3, backoff=0.01)
    c = chat.chat([{"role": "user", "content": "hi"}], max_new_tokens=5)
    assert c.text == "hello" and c.prompt_tokens == 11 and c.completion_tokens == 3
    assert len(server.requests) == 3
    assert server.requests[-1]["path"] == "/v1/chat/completions" and server.requests[-1]["auth"] == "Bearer k"
    assert server.requests[-1]["body"]["max_tokens"] == 5


@pytest.mark.parametrize("server", [[(401, {"error": "bad key"})]], indirect=True)
def test_bad_key_is_a_clear_error_without_retries(server):
    with pytest.raises(EndpointError, match="refused the API key"):
        OpenAIChat(server.url, "m", api_key="wrong", backoff=0.01).chat([{"role": "user", "content": "x"}])
    assert len(server.requests) == 1


@pytest.mark.parametrize("server", [[_ok("a red car")]], indirect=True)
def test_images_go_as_base64_jpeg(server):
    chat = OpenAIChat(server.url, "vlm", supports_images=True)
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    assert chat.chat([{"role": "user", "content": "what?"}], images=[img]).text == "a red car"
    content = server.requests[0]["body"]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what?"}
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")


def test_refused_connection_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    chat = OpenAIChat(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(EndpointError, match=f"127.0.0.1:{port}.*is the server running"):
        chat.chat([{"role": "user", "content": "x"}])
