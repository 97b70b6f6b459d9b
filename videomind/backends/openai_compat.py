"""Any OpenAI-compatible chat endpoint: vLLM, SGLang, Ollama, llama.cpp server, hosted APIs.

Uses only the standard library. Images go as base64 JPEG data URLs for VLM endpoints.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from videomind.backends.base import Completion
from videomind.config import Config
from videomind.errors import ConfigError, VideoMindError

logger = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
REDIRECT_STATUS = {301, 302, 303, 307, 308}


class EndpointError(VideoMindError):
    """The endpoint refused the request or could not be reached; the message says what to check."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects come back as HTTPError: urllib re-sends a POST redirected by 301/302/303 as a GET without its body
    (the endpoint then answers 405) and refuses 307/308, so following one only hides where the endpoint is."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _image_part(image: Any) -> dict[str, Any]:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).convert("RGB").save(buf, format="JPEG", quality=85)
    b64 = base64.b64encode(buf.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}}


class OpenAIChat:
    """Chat completions over HTTP with timeouts and retries (exponential backoff on 429/5xx/connection errors)."""

    weak = False

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 retries: int = 3, backoff: float = 1.0, supports_images: bool = False,
                 context_window: int = 32768):
        if not base_url:
            raise ConfigError("config key 'agent.base_url': set the endpoint, e.g. http://localhost:8000/v1 "
                              "(or the OPENAI_BASE_URL environment variable)")
        if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):  # urllib would say "unknown url type"
            raise ConfigError(f"config key 'agent.base_url': {base_url!r} must start with http:// or https://, "
                              f"e.g. http://localhost:8000/v1")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.name, self.api_key, self.timeout = model, _header_key(api_key, "given as api_key"), timeout
        self.retries, self.backoff = retries, backoff
        self.supports_images, self.context_window = supports_images, context_window
        self._opener = urllib.request.build_opener(_NoRedirect())

    @classmethod
    def from_config(cls, config: Config) -> OpenAIChat:
        base = config.agent.base_url or os.environ.get("OPENAI_BASE_URL", "")
        model = config.models.vlm or config.models.llm
        env = config.agent.api_key_env
        key = _header_key(os.environ.get(env), f"in the environment variable {env} (named by agent.api_key_env)")
        return cls(base, model, key, timeout=config.agent.timeout_s, supports_images=bool(config.models.vlm))

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        failure, status, wait = "", 0, 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(max(self.backoff * 2 ** (attempt - 1), wait))
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    return self._decode(resp.read())
            except urllib.error.HTTPError as e:
                status, body = e.code, _error_body(e)
                if e.code in REDIRECT_STATUS:
                    raise EndpointError(self._redirected(e.code, e.headers)) from e
                if e.code in (401, 403):
                    raise EndpointError(f"{self.url} refused the API key (HTTP {e.code}): set a valid key in the "
                                        f"environment variable named by agent.api_key_env. {body}") from e
                if e.code == 404:
                    raise EndpointError(f"{self.url} not found (HTTP 404): check agent.base_url (it usually ends "
                                        f"in /v1) and that model {self.name!r} is served. {body}") from e
                if e.code not in RETRY_STATUS:
                    raise EndpointError(f"{self.url} answered HTTP {e.code}: {body}") from e
                failure, wait = f"HTTP {e.code}: {body}", _retry_after(e.headers)
            # a refused or dropped connection, a timeout, a body cut short (http.client.IncompleteRead)
            except (OSError, http.client.HTTPException) as e:
                status, failure, wait = 0, f"{type(e).__name__}: {e}", 0.0
            logger.warning("endpoint %s failed (attempt %d/%d): %s", self.url, attempt + 1, self.retries + 1, failure)
        raise EndpointError(self._gave_up(status, failure))

    def _redirected(self, status: int, headers: Any) -> str:
        """Where a redirect points and the agent.base_url that reaches it (http -> https, a moved path)."""
        location = (headers.get("Location") or "") if headers is not None else ""
        if not location:
            return f"{self.url} answered a redirect (HTTP {status}) without a Location: check agent.base_url"
        target = urllib.parse.urljoin(self.url, location)
        base = target[:-len("/chat/completions")] if target.endswith("/chat/completions") else target
        return f"{self.url} redirected (HTTP {status}) to {target}: set agent.base_url to {base}"

    def _gave_up(self, status: int, failure: str) -> str:
        """Why the last attempt failed and what to do about it: a rate limit and a failing server are up."""
        tries = f"{self.retries + 1} attempt(s)"
        if status == 429:
            return (f"{self.url} is rate limiting (HTTP 429) after {tries}: {failure}. Wait and retry, or send fewer "
                    f"requests at once (fewer eval workers)")
        if status:
            return (f"{self.url} kept failing with HTTP {status} after {tries}: {failure}. The server is up but "
                    f"erroring: see its log (model not loaded, out of memory, prompt too long)")
        if "timed out" in failure.lower() or "Timeout" in failure:
            return (f"{self.url} did not answer within {self.timeout:g} s, {tries}: the server is overloaded or the "
                    f"model too slow for this prompt ({failure}); raise agent.timeout_s to wait longer")
        return (f"could not reach {self.url} after {tries} ({failure}); is the server running and agent.base_url "
                f"right?")

    def _decode(self, raw: bytes) -> dict[str, Any]:
        try:
            out = json.loads(raw.decode("utf-8"))
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            hint = " It streamed (server-sent events): it must honour \"stream\": false." \
                if raw.lstrip().startswith(b"data:") else " Is it an OpenAI-compatible server (or a proxy page)?"
            raise EndpointError(f"{self.url} did not answer with JSON: {_snippet(raw)!r}.{hint}") from e
        if not isinstance(out, dict):
            raise EndpointError(f"{self.url} answered JSON that is not an object: {_snippet(raw)!r}")
        return out

    def check(self) -> None:
        """Ask for one token, with the usual retries.

        Raises:
            EndpointError: the endpoint cannot be reached or does not serve the model (the message says what to
                check).
        """
        self.chat([{"role": "user", "content": "Say OK."}], max_new_tokens=1)

    def chat(self, messages: list[dict[str, str]], *, max_new_tokens: int = 256, temperature: float = 0.0,
             images: list[Any] | None = None) -> Completion:
        msgs: list[dict[str, Any]] = [dict(m) for m in messages]
        if images:
            if not self.supports_images:
                raise EndpointError(f"model {self.name!r} is configured as text-only: set models.vlm to send frames")
            last = msgs[-1]
            last["content"] = [{"type": "text", "text": last["content"]}] + [_image_part(im) for im in images]
        t0 = time.perf_counter()
        out = self._post({"model": self.name, "messages": msgs, "max_tokens": max_new_tokens,
                          "temperature": temperature, "stream": False})
        if out.get("error"):  # some servers report a failure in a 200 reply
            err = out["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            raise EndpointError(f"{self.url} answered with an error: {_snippet(msg)}")
        try:
            choice = out["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise EndpointError(f"{self.url} answered without choices[0].message.content: {str(out)[:300]}") from e
        usage = out.get("usage") if isinstance(out.get("usage"), dict) else {}
        return Completion(_text(content), _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")),
                          time.perf_counter() - t0, {"finish_reason": choice.get("finish_reason")})


def _header_key(key: str | None, where: str) -> str | None:
    """``key`` without the whitespace around it (a pasted key often ends in a newline), None when that leaves nothing.

    Raises:
        ConfigError: it cannot go in an HTTP header (http.client refuses control characters, and header values are
            Latin-1, so a typographic quote fails to encode). The message names ``where`` the key came from and the
            offending character, never the key: it is a secret, and errors end up in logs.
    """
    key = (key or "").strip()
    for i, ch in enumerate(key):
        if not ch.isprintable() or ord(ch) > 0xFF:
            raise ConfigError(f"the API key {where} cannot be sent in an HTTP header: its character {i + 1} of "
                              f"{len(key)} is U+{ord(ch):04X} ({unicodedata.name(ch, 'a control character')}); "
                              f"set it to the key alone, without quotes or line breaks")
    return key or None


def _text(content: Any) -> str:
    """The reply's text: a string, null (a reply of tool calls only) or a list of content parts."""
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    return content if isinstance(content, str) else "" if content is None else str(content)


def _count(value: Any) -> int:
    """A token count of ``usage``; servers omit it, send null, or (proxies) a string."""
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def _snippet(raw: Any, n: int = 300) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return text[:n]


def _error_body(e: urllib.error.HTTPError) -> str:
    try:
        return _snippet(e.read())
    except (OSError, http.client.HTTPException):  # the error page itself was cut short
        return ""


def _retry_after(headers: Any) -> float:
    """Seconds a 429/503 asks us to wait (Retry-After in seconds), capped at a minute; 0 when absent."""
    try:
        return min(max(float(headers.get("Retry-After", 0)), 0.0), 60.0)
    except (AttributeError, TypeError, ValueError):
        return 0.0
