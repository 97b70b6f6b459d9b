"""The real bundled SmolLM2-135M-Instruct through transformers (first run converts the GGUF, ~40 s; cached)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from videomind.backends.hf_local import SOURCE_STAMP, _install, _stamp_of, _sweep_stale_temps, gguf_cache_dir
from videomind.backends.registry import backend_class, load_backend
from videomind.config import Config, default_home
from videomind.errors import ConfigError
from videomind.models.registry import resolve


def bundled_gguf() -> Path:
    return Path(resolve(Config().models.llm, "llm", False).path)


@pytest.fixture(scope="module")
def offline():
    return load_backend(Config())


def test_offline_backend_loads_from_cache_and_chats(offline):
    folder = gguf_cache_dir(bundled_gguf())
    assert folder.parent == default_home() / "models" and (folder / "config.json").is_file()
    assert json.loads((folder / SOURCE_STAMP).read_text())["gguf"] == str(bundled_gguf().resolve())
    assert offline.weak and not offline.supports_images and offline.context_window >= 2048
    c = offline.chat([{"role": "user", "content": "What is the capital of France? One word."}], max_new_tokens=12)
    assert "paris" in c.text.lower()
    assert c.prompt_tokens > 5 and 0 < c.completion_tokens <= 12


def test_unknown_backend_names_the_key():
    with pytest.raises(ConfigError, match="agent.backend.*offline, transformers, openai"):
        backend_class("llama")


def test_cached_conversion_is_complete(offline):
    folder = gguf_cache_dir(bundled_gguf())
    assert any(folder.glob("*.safetensors")) and (folder / "tokenizer_config.json").is_file()
    assert not list(folder.parent.glob(folder.name + ".tmp*"))  # no half-written conversions left


def test_the_transformers_backend_loads_a_gguf_through_the_same_cache(offline):
    """agent.backend=transformers with the default models.llm (a GGUF) handed the .gguf file to from_pretrained,
    which read it as a config.json; it now loads the safetensors copy the offline backend made."""
    chat = load_backend(Config.from_dict({"agent": {"backend": "transformers"}}))
    assert chat.name == offline.name and chat.context_window == offline.context_window
    assert "paris" in chat.chat([{"role": "user", "content": "What is the capital of France? One word."}],
                                max_new_tokens=12).text.lower()


def test_a_gguf_anywhere_is_cached_under_the_home_folder(tmp_path):
    """An absolute models.llm joined onto the cache folder replaced it: the cache 'folder' was the GGUF itself."""
    a, b = tmp_path / "a" / "my-model.gguf", tmp_path / "b" / "my-model.gguf"
    assert gguf_cache_dir(a).parent == gguf_cache_dir(b).parent == default_home() / "models"
    assert gguf_cache_dir(a) != gguf_cache_dir(b) and gguf_cache_dir(a).name.startswith("my-model-")
    os.chdir(tmp_path)
    assert gguf_cache_dir(Path("a/my-model.gguf")) == gguf_cache_dir(a)


def _conversion(folder: Path, stamp: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / SOURCE_STAMP).write_text(json.dumps(stamp))
    return folder


def test_an_outdated_cache_is_replaced_and_a_current_one_kept(tmp_path):
    """A cache made from another file (replaced GGUF, upgraded wheel) or by another transformers is replaced by
    the new conversion; one a concurrent process installed for the same source is kept (it may be loading)."""
    cache = tmp_path / "models" / "m-0123456789"
    new = {"gguf": "/x/m.gguf", "size": 2, "mtime_ns": 2, "transformers": "5.0"}
    _conversion(cache, dict(new, size=1))
    tmp = _conversion(tmp_path / "models" / "m-0123456789.tmpabc", new)
    _install(tmp, cache, new)
    assert _stamp_of(cache) == new and not tmp.exists() and [p.name for p in cache.parent.iterdir()] == [cache.name]
    other = _conversion(tmp_path / "models" / "m-0123456789.tmpdef", new)
    (cache / "marker").write_text("installed first")
    _install(other, cache, new)
    assert (cache / "marker").is_file() and other.exists()  # left to its caller, which removes it
    assert _stamp_of(tmp_path / "nowhere") is None


def test_conversions_left_by_killed_processes_are_swept(tmp_path):
    cache = tmp_path / "m-0123456789"
    old_tmp, old_aside, fresh = (tmp_path / f"m-0123456789.{n}" for n in ("tmp1", "old42", "tmp2"))
    for d in (old_tmp, old_aside, fresh):
        d.mkdir()
    hour_ago = time.time() - 7200
    for d in (old_tmp, old_aside):
        os.utime(d, (hour_ago, hour_ago))
    _sweep_stale_temps(cache)
    assert not old_tmp.exists() and not old_aside.exists() and fresh.exists()  # another process may be writing it


SMOLLM2_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
                  "num_hidden_layers": 30, "vocab_size": 49152, "transformers_version": "5.23.0"}


def _legacy_copy(folder: Path, config: dict | None = None) -> Path:
    """What versions before the <stem>-<hash> folders wrote at <home>/models/smollm2-135m-instruct (a stand-in
    model.safetensors: only the names and the config are looked at)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config or SMOLLM2_CONFIG))
    (folder / "model.safetensors").write_bytes(b"\0" * 3_000_000)
    for name in ("generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (folder / name).write_text("{}")
    return folder


def test_the_old_layouts_smollm2_copy_is_removed_and_nothing_else(tmp_path, caplog):
    """<home>/models/smollm2-135m-instruct (~0.5 GB) was left on disk for good when copies moved to
    <stem>-<hash> folders."""
    from videomind.backends.hf_local import remove_legacy_cache

    legacy = _legacy_copy(tmp_path / "smollm2-135m-instruct")
    size = sum(f.stat().st_size for f in legacy.iterdir())
    keep = [_legacy_copy(tmp_path / n) for n in ("smollm2-135m-instruct.q4_1-0123456789",
                                                  "smollm2-135m-instruct.tmp1", "smollm2-135m-instruct-2")]
    with caplog.at_level("INFO", logger="videomind.backends.hf_local"):
        assert remove_legacy_cache(tmp_path) == size
    assert not legacy.exists() and all((k / "model.safetensors").is_file() for k in keep)
    assert f"removed {legacy}" in caplog.text and "3 MB freed" in caplog.text
    assert remove_legacy_cache(tmp_path) == 0  # gone: nothing to do


@pytest.mark.parametrize("change", ["user file", "subfolder", "other model", "no weights", "not json", "symlink",
                                    "a file"])
def test_a_folder_of_that_name_that_is_not_recognisably_ours_is_left(tmp_path, change):
    from videomind.backends.hf_local import remove_legacy_cache

    folder = tmp_path / "smollm2-135m-instruct"
    if change == "symlink":  # removing it would remove (or strand) what it points at
        folder.symlink_to(_legacy_copy(tmp_path / "elsewhere"))
    elif change == "a file":
        folder.write_text("mine")
    else:
        _legacy_copy(folder, dict(SMOLLM2_CONFIG, hidden_size=960) if change == "other model" else None)
        if change == "user file":
            (folder / "notes.txt").write_text("mine")
        elif change == "subfolder":
            (folder / "runs").mkdir()
        elif change == "no weights":
            (folder / "model.safetensors").unlink()
        elif change == "not json":
            (folder / "config.json").write_text("{")
    assert remove_legacy_cache(tmp_path) == 0
    assert folder.exists() and (tmp_path / "elsewhere" / "model.safetensors").is_file() is (change == "symlink")


def test_writing_a_gguf_copy_removes_the_old_layouts_copy(tmp_path, monkeypatch):
    """The conversion itself (~40 s) is replaced by a stand-in that writes a config and a tokenizer file."""
    from types import SimpleNamespace

    from videomind.backends import hf_local

    class Saved:
        def __init__(self, name):
            self.name, self.config, self.hf_quantizer = name, SimpleNamespace(), None

        def save_pretrained(self, folder):
            (Path(folder) / self.name).write_text("{}")

    fake = SimpleNamespace(__version__="5.23.0",
                           AutoTokenizer=SimpleNamespace(from_pretrained=lambda *a, **kw: Saved("tokenizer.json")),
                           AutoModelForCausalLM=SimpleNamespace(from_pretrained=lambda *a, **kw: Saved("config.json")))
    monkeypatch.setattr(hf_local, "require", lambda *a: fake)
    monkeypatch.setenv("VIDEOMIND_HOME", str(tmp_path / "home"))
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    legacy = _legacy_copy(tmp_path / "home" / "models" / "smollm2-135m-instruct")
    cache = hf_local.gguf_to_safetensors(gguf)
    assert _stamp_of(cache) and not legacy.exists()
    _legacy_copy(legacy)  # the previous version converted already: the next load, with no conversion, removes it
    assert hf_local.gguf_to_safetensors(gguf) == cache and not legacy.exists()
