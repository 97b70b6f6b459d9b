"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 (stdlib), scripted per test."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from videomind.backends.openai_compat import EndpointError, OpenAIChat
from videomind.errors import ConfigError


class _Server:
    def __init__(self, replies):
        self.replies, self.requests = list(replies), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, payload, *extra = outer.replies.pop(0) if outer.replies else (500, {})
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", "Content-Length": str(len(data)),
                           **(extra[0] if extra else {})}
                if headers.pop("Sleep", None):
                    time.sleep(1.0)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
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


def _chat(server, **kw):
    return OpenAIChat(server.url, "m", **{"retries": 1, "backoff": 0.01, **kw}).chat([{"role": "user", "content": "x"}])


@pytest.mark.parametrize("server", [[
    (200, {"choices": [{"message": {"content": [{"type": "text", "text": "a "}, {"type": "text", "text": "b"}]},
                        "finish_reason": "length"}], "usage": {"prompt_tokens": None, "completion_tokens": "4"}}),
]], indirect=True)
def test_content_parts_and_odd_usage_are_read(server):
    """Some servers send content as a list of parts and null or string token counts; the reply is still text
    (a list reached parse_action and crashed the loop; int(None) crashed here)."""
    c = _chat(server)
    assert c.text == "a b" and (c.prompt_tokens, c.completion_tokens) == (0, 4)
    assert c.meta["finish_reason"] == "length" and server.requests[0]["body"]["stream"] is False


@pytest.mark.parametrize("server, msg", [
    ([(200, b"\xff\xfe{")], "did not answer with JSON"),
    ([(200, b"<html>proxy login</html>", {"Content-Type": "text/html"})], "proxy login"),
    ([(200, b'data: {"choices": []}\n\ndata: [DONE]\n\n', {"Content-Type": "text/event-stream"})], "streamed"),
    ([(200, {"error": {"message": "model 'm' is not loaded"}})], "answered with an error: model 'm' is not loaded"),
    ([(200, [1, 2])], "not an object"),
], indirect=["server"])
def test_replies_that_are_not_a_completion_say_what_came_back(server, msg):
    with pytest.raises(EndpointError, match=msg):
        _chat(server)


@pytest.mark.parametrize("server", [[(200, b'{"choices": [', {"Content-Length": "500"}), _ok("hi")]],
                         indirect=True)
def test_a_reply_cut_short_is_retried(server):
    """A dropped connection mid-body raised http.client.IncompleteRead, which no handler caught."""
    assert _chat(server).text == "hi" and len(server.requests) == 2


@pytest.mark.parametrize("server", [[(429, {"error": {"message": "3 requests per minute"}}, {"Retry-After": "0.4"}),
                                     (429, {"error": {"message": "3 requests per minute"}})]], indirect=True)
def test_rate_limit_waits_as_asked_and_says_it_is_a_rate_limit(server):
    t0 = time.perf_counter()
    with pytest.raises(EndpointError, match="(?s)rate limiting.*3 requests per minute.*send fewer requests"):
        _chat(server)
    assert time.perf_counter() - t0 >= 0.4  # Retry-After, not the 0.01 s backoff


@pytest.mark.parametrize("server", [[(500, {"error": {"message": "CUDA out of memory"}})] * 2], indirect=True)
def test_a_failing_server_is_not_called_unreachable(server):
    with pytest.raises(EndpointError, match="(?s)HTTP 500.*CUDA out of memory.*see its log") as e:
        _chat(server)
    assert "is the server running" not in str(e.value)


@pytest.mark.parametrize("server", [[(200, {}, {"Sleep": "1"}), (200, {}, {"Sleep": "1"})]], indirect=True)
def test_a_timeout_names_the_limit(server):
    with pytest.raises(EndpointError, match=r"did not answer within 0\.3 s"):
        _chat(server, timeout=0.3)


@pytest.mark.parametrize("url", ["localhost:8000/v1", "ftp://host/v1", "127.0.0.1:8000"])
def test_a_base_url_without_http_is_a_config_error(url):
    with pytest.raises(ConfigError, match="agent.base_url.*http://"):
        OpenAIChat(url, "m")


@pytest.mark.parametrize("server", [[(200, {}, {"Sleep": "1"}), (200, {}, {"Sleep": "1"})]], indirect=True)
def test_the_timeout_comes_from_the_config(server):
    from videomind.config import Config

    cfg = Config.from_dict({}, [f"agent.base_url={server.url}", "agent.timeout_s=0.3"])
    chat = OpenAIChat.from_config(cfg)
    chat.retries, chat.backoff = 1, 0.01
    with pytest.raises(EndpointError, match=r"did not answer within 0\.3 s.*raise agent\.timeout_s"):
        chat.chat([{"role": "user", "content": "x"}])
    with pytest.raises(ConfigError, match="agent.timeout_s"):
        Config.from_dict({}, ["agent.timeout_s=0"])


@pytest.mark.parametrize("server", [[_ok("hi")]], indirect=True)
def test_a_pasted_key_with_a_line_break_around_it_is_sent_without_it(server, monkeypatch):
    """http.client refused the header with a ValueError whose traceback printed the key."""
    from videomind.config import Config

    monkeypatch.setenv("VM_TEST_KEY", "  sk-secret-123\n")
    cfg = Config.from_dict({}, [f"agent.base_url={server.url}", "agent.api_key_env=VM_TEST_KEY"])
    assert OpenAIChat.from_config(cfg).chat([{"role": "user", "content": "x"}]).text == "hi"
    assert server.requests[0]["auth"] == "Bearer sk-secret-123"


@pytest.mark.parametrize("key, char", [("\u201csk-secret-123\u201d", "U+201C"), ("sk-secret\n123", "U+000A"),
                                       ("sk-secret\t123", "U+0009"), ("sk-secret\u2028123", "U+2028")])
def test_a_key_that_cannot_go_in_a_header_names_its_variable_not_its_value(key, char, monkeypatch):
    from videomind.config import Config

    monkeypatch.setenv("VM_TEST_KEY", key)
    cfg = Config.from_dict({}, ["agent.base_url=http://127.0.0.1:9/v1", "agent.api_key_env=VM_TEST_KEY"])
    with pytest.raises(ConfigError, match=rf"VM_TEST_KEY.*agent\.api_key_env.*{re.escape(char)}") as e:
        OpenAIChat.from_config(cfg)
    assert "secret" not in str(e.value) and e.value.__cause__ is None
    with pytest.raises(ConfigError, match="api_key") as e:
        OpenAIChat("http://127.0.0.1:9/v1", "m", api_key=key)
    assert "secret" not in str(e.value)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_says_where_it_points_and_what_to_set(status):
    """urllib followed 301/302 as a bodiless GET (reported as 'HTTP 405') and reported 307/308 without their
    Location; an http -> https proxy left the user nothing to act on."""
    s = _Server([(status, {"detail": "moved"}, {"Location": "/v2/chat/completions"})])
    try:
        with pytest.raises(EndpointError, match=rf"redirected \(HTTP {status}\) to {s.url[:-3]}/v2/chat/completions: "
                                                rf"set agent\.base_url to {s.url[:-3]}/v2$"):
            _chat(s)
        assert len(s.requests) == 1  # not followed, not retried
    finally:
        s.close()


@pytest.mark.parametrize("server", [[(301, {}, {"Location": "https://api.example.com/v1/chat/completions"})]],
                         indirect=True)
def test_a_redirect_to_https_names_the_https_base_url(server):
    with pytest.raises(EndpointError, match=r"set agent\.base_url to https://api\.example\.com/v1$"):
        _chat(server)
