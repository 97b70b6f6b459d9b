"""Any OpenAI-compatible chat endpoint: vLLM, SGLang, Ollama, llama.cpp server, hosted APIs.

Uses only the standard library. Images go as base64 JPEG data URLs for VLM endpoints.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any

from videomind.backends.base import Completion
from videomind.config import Config
from videomind.errors import ConfigError, VideoMindError

logger = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(VideoMindError):
    """The endpoint refused the request or could not be reached; the message says what to check."""


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
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.name, self.api_key, self.timeout = model, api_key, timeout
        self.retries, self.backoff = retries, backoff
        self.supports_images, self.context_window = supports_images, context_window

    @classmethod
    def from_config(cls, config: Config) -> OpenAIChat:
        base = config.agent.base_url or os.environ.get("OPENAI_BASE_URL", "")
        model = config.models.vlm or config.models.llm
        return cls(base, model, os.environ.get(config.agent.api_key_env), supports_images=bool(config.models.vlm))

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as e:
                body = e.read().decode(errors="replace")[:300]
                if e.code in (401, 403):
                    raise EndpointError(f"{self.url} refused the API key (HTTP {e.code}): set a valid key in the "
                                        f"environment variable named by agent.api_key_env. {body}") from e
                if e.code == 404:
                    raise EndpointError(f"{self.url} not found (HTTP 404): check agent.base_url (it usually ends "
                                        f"in /v1) and that model {self.name!r} is served. {body}") from e
                if e.code not in RETRY_STATUS:
                    raise EndpointError(f"{self.url} answered HTTP {e.code}: {body}") from e
                last = e
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = e
            except json.JSONDecodeError as e:
                raise EndpointError(f"{self.url} did not answer with JSON: is it an OpenAI-compatible server?") from e
            logger.warning("endpoint %s failed (attempt %d/%d): %s", self.url, attempt + 1, self.retries + 1, last)
        raise EndpointError(f"could not reach {self.url} after {self.retries + 1} attempts ({last}); is the server "
                            f"running and agent.base_url right?") from last

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
                          "temperature": temperature})
        try:
            text = out["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as e:
            raise EndpointError(f"{self.url} answered without choices[0].message.content: {str(out)[:300]}") from e
        usage = out.get("usage") or {}
        return Completion(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                          time.perf_counter() - t0)
