"""Validated configuration: one dataclass per component, composed in :class:`Config`.

Load with ``Config.from_file("vm.toml", overrides=["ingest.fps=2"])``. Every error names the offending key.
Each component receives only its own part; the resolved config is written next to every memory store.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from videomind.errors import ConfigError

# Whisper's language codes (faster_whisper.tokenizer._LANGUAGE_CODES; tests/test_config.py checks they agree), kept
# here so that a config can be validated without importing the optional ASR dependency.
WHISPER_LANGUAGES = frozenset(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht hu hy id "
    "is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa sd "
    "si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue".split())


def default_home() -> Path:
    """Where caches and the memory library live; ``VIDEOMIND_HOME`` overrides ``~/.cache/videomind``."""
    return Path(os.environ.get("VIDEOMIND_HOME") or Path.home() / ".cache" / "videomind")


# The names of videomind.backends.registry.BACKENDS (tests/test_config.py checks they agree), so that a config can be
# validated without importing the backends, which import this module.
AGENT_BACKENDS = ("offline", "transformers", "openai", "vlm")

# Field metadata of settings that change how fast or from where, never what is computed (the stage cache leaves
# them out too): Config.hash keys stores on their defaults, so changing one reopens the same memory.
RUNTIME = {"runtime": True}


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"config key {key!r}: {msg}")


DEVICES = "auto, cpu, cuda or cuda:N (N: the GPU's index, e.g. cuda:1)"


def parse_device(device: str, key: str = "models.device") -> tuple[str, int | None]:
    """``models.device`` as (kind, GPU index): "cuda:1" -> ("cuda", 1); "auto", "cpu", "cuda" -> (itself, None).

    Consumers take the kind and the index from here, as each library wants them (torch "cuda:1", CTranslate2
    device="cuda" with device_index=1), rather than comparing the text with "cuda".

    Raises:
        ConfigError: any other value, naming ``key`` and the accepted forms.
    """
    if device in ("auto", "cpu", "cuda"):
        return device, None
    m = re.fullmatch(r"cuda:([0-9]+)", device) if isinstance(device, str) else None
    _check(m is not None, key, f"{device!r} is not a device; use {DEVICES}")
    return "cuda", int(m.group(1))


@dataclass
class ModelsConfig:
    """Which model serves each capability. A name is a registry alias, a local path or a Hugging Face id."""

    asr: str = "whisper-tiny.en"
    ocr: str = "rapidocr"
    text_embed: str = "all-MiniLM-L6-v2"
    visual_embed: str = "perceptual"  # "perceptual" needs no weights; or an open_clip name, e.g. "ViT-B-32:openai"
    llm: str = "smollm2-135m-instruct"
    vlm: str = ""  # empty: no VLM configured
    allow_download: bool = field(default=False, metadata=RUNTIME)  # only then may a Hugging Face id be fetched
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" (the GPU of index N)

    def validate(self, prefix: str = "models") -> None:
        parse_device(self.device, f"{prefix}.device")
        for name in ("asr", "text_embed", "llm"):
            _check(bool(getattr(self, name)), f"{prefix}.{name}", "must name a model")


@dataclass
class IngestConfig:
    """How a video is turned into observations."""

    # decode window: memory is bounded by one chunk, and a followed recording is queryable after each one (short
    # chunks answer sooner; under 2 s the per-chunk work, a transaction and an ASR window, dominates)
    chunk_seconds: float = 60.0
    fps: float = 1.0  # frames sampled per second for scenes, keyframes and OCR
    frame_size: int = 384  # longest side of sampled frames, pixels
    asr: bool = True
    asr_language: str | None = None  # None: detect when the model is multilingual
    asr_vad: bool = True
    asr_threads: int = field(default=0, metadata=RUNTIME)  # CPU threads for Whisper; 0: auto (ingest.asr)
    ocr: bool = True
    ocr_min_confidence: float = 0.6
    subtitles: bool = True
    scene_threshold: float = 0.0  # 0: adaptive (median + k * MAD of frame differences)
    thumbnails: bool = True  # keyframe JPEGs in the store (evidence images in the app); false saves disk
    captions: bool = True  # only when a VLM is configured

    def validate(self, prefix: str = "ingest") -> None:
        # The upper bound keeps one chunk's frames and audio in memory (and the chunk grid in range).
        _check(2 <= self.chunk_seconds <= 3600, f"{prefix}.chunk_seconds", "must be in [2, 3600]")
        _check(0 < self.fps <= 30, f"{prefix}.fps", "must be in (0, 30]")
        _check(64 <= self.frame_size <= 4096, f"{prefix}.frame_size", "must be in [64, 4096]")
        _check(0 <= self.ocr_min_confidence <= 1, f"{prefix}.ocr_min_confidence", "must be in [0, 1]")
        _check(self.scene_threshold >= 0, f"{prefix}.scene_threshold", "must be >= 0")
        _check(0 <= self.asr_threads <= 64, f"{prefix}.asr_threads", "must be in [0, 64] (0: auto)")
        _check(self.asr_language is None or self.asr_language in WHISPER_LANGUAGES, f"{prefix}.asr_language",
               f"{self.asr_language!r} is not a Whisper language code; use one such as en, fr, de, es, zh "
               f"(or leave it unset to detect the language)")


@dataclass
class MemoryConfig:
    """Episodic scales and retrieval settings."""

    clip_seconds: float = 10.0
    segment_seconds: float = 60.0
    chapter_seconds: float = 300.0
    top_k: int = 5
    hybrid: bool = True  # BM25 + dense, fused by reciprocal rank; False: dense only
    rrf_k: int = 60

    def validate(self, prefix: str = "memory") -> None:
        _check(self.clip_seconds > 0, f"{prefix}.clip_seconds", "must be > 0")
        _check(self.segment_seconds > self.clip_seconds, f"{prefix}.segment_seconds", "must exceed clip_seconds")
        _check(self.chapter_seconds > self.segment_seconds, f"{prefix}.chapter_seconds", "must exceed segment_seconds")
        _check(self.top_k >= 1, f"{prefix}.top_k", "must be >= 1")
        _check(self.rrf_k >= 1, f"{prefix}.rrf_k", "must be >= 1")


@dataclass
class AgentConfig:
    """The answering loop."""

    backend: str = "offline"  # name in videomind.backends.registry
    policy: str = "auto"  # auto: heuristic for weak models, llm otherwise | heuristic | llm
    max_steps: int = 6
    base_url: str = ""  # openai backend
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0  # openai backend: seconds per request (a long video prompt on a busy server is slow)
    temperature: float = 0.0
    max_new_tokens: int = 256
    # transformers backends: let a reasoning model (Qwen3 ...) think before each reply. Off by default: a step's
    # thinking would use up max_new_tokens before the tool call (the template's enable_thinking switch)
    thinking: bool = False

    def validate(self, prefix: str = "agent") -> None:
        _check(self.backend in AGENT_BACKENDS, f"{prefix}.backend",
               f"unknown backend {self.backend!r}; one of {', '.join(AGENT_BACKENDS)}")
        _check(self.policy in ("auto", "heuristic", "llm"), f"{prefix}.policy", "must be auto, heuristic or llm")
        _check(1 <= self.max_steps <= 50, f"{prefix}.max_steps", "must be in [1, 50]")
        _check(self.timeout_s > 0, f"{prefix}.timeout_s", "must be > 0 seconds")
        _check(self.temperature >= 0, f"{prefix}.temperature", "must be >= 0 (0: greedy)")
        _check(self.max_new_tokens >= 1, f"{prefix}.max_new_tokens", "must be >= 1")


@dataclass
class VLMConfig:
    """How the local VLM engine (``models.vlm``, see videomind.backends.hf_vlm) looks at a span of frames.

    Inference settings only: they do not key memory stores (captions are keyed by the model and clip length).
    """

    token_budget: int = 4096  # visual tokens kept per request, however many frames (streaming compression)
    redundancy: float = 0.95  # cosine at or above which a token repeating its position is dropped; > 1: keep all
    frame_pixels: int = 448 * 252  # pixel cap per frame (Qwen2.5-VL: one token per 28x28 pixels)
    max_frames: int = 3600  # frames read per request at most (the stream is cut after that)
    patches_per_call: int = 8  # temporal patches per vision-tower call (memory vs speed)
    sparse_config: str = ""  # a videomind.kernels.search JSON: sparse prefill for long prompts; "": stock attention
    sparse_min_tokens: int = 32768  # prompts shorter than this prefill with stock attention

    def validate(self, prefix: str = "vlm") -> None:
        _check(16 <= self.token_budget <= 1_048_576, f"{prefix}.token_budget", "must be in [16, 1048576]")
        _check(0 < self.redundancy, f"{prefix}.redundancy", "must be > 0 (values > 1 keep every token)")
        _check(28 * 28 <= self.frame_pixels <= 4096 * 4096, f"{prefix}.frame_pixels", "must be in [784, 16777216]")
        _check(self.max_frames >= 1, f"{prefix}.max_frames", "must be >= 1")
        _check(1 <= self.patches_per_call <= 256, f"{prefix}.patches_per_call", "must be in [1, 256]")
        _check(self.sparse_min_tokens >= 1, f"{prefix}.sparse_min_tokens", "must be >= 1")
        _check(not self.sparse_config or Path(self.sparse_config).expanduser().is_file(), f"{prefix}.sparse_config",
               f"{self.sparse_config!r} is not a file: give the JSON written by videomind.kernels.search, or leave "
               f"it empty for stock attention")


@dataclass
class Config:
    """The root configuration."""

    models: ModelsConfig = field(default_factory=ModelsConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)
    library: str = ""  # directory of memory stores; empty: <VIDEOMIND_HOME>/library

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint):
                part = getattr(self, f.name)
                if not isinstance(part, hint):  # Config(ingest={"fps": 2}): from_dict builds sections from mappings
                    raise ConfigError(f"config key {f.name!r}: expected {hint.__name__}, got "
                                      f"{type(part).__name__}; build it with Config.from_dict({{{f.name!r}: ...}})")
                _check_types(part, f.name + ".")
                part.validate(f.name)
            else:
                value = getattr(self, f.name)
                value = os.fspath(value) if isinstance(value, os.PathLike) else value  # library=Path(...)
                setattr(self, f.name, _coerce(value, hint, f.name))
        # Checked here, not when the first store is made, so that the error names the key.
        _check(not self.library_dir.exists() or self.library_dir.is_dir(), "library",
               f"{self.library!r} is not a directory: give a folder for the memory stores (it is created if missing)")
        # Whisper '.en' models only transcribe English: another language would be silently ignored.
        lang, asr = self.ingest.asr_language, self.models.asr.rstrip("/\\")
        _check(lang in (None, "en") or not asr.endswith(".en"), "ingest.asr_language",
               f"{lang!r} needs a multilingual Whisper model, but models.asr={self.models.asr!r} is English-only; "
               f"set models.asr to e.g. 'Systran/faster-whisper-small' (with models.allow_download=true) or a "
               f"local multilingual model, or unset ingest.asr_language")

    @property
    def library_dir(self) -> Path:
        return Path(self.library).expanduser() if self.library else default_home() / "library"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self, *parts: str) -> str:
        """Stable hash of the given parts (all when none), to key caches on the settings that shape them.

        ``RUNTIME`` fields are hashed at their defaults: they shape nothing, and a default stays the value that
        stores made before they were marked were keyed on."""
        d = self.to_dict()
        for name, section in d.items():
            if isinstance(section, dict):
                part = getattr(self, name)
                section.update({g.name: g.default for g in fields(part) if g.metadata.get("runtime")})
        d = {k: d[k] for k in parts} if parts else d
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any], overrides: list[str] | None = None) -> Config:
        return cls._from_data(data, overrides, "")

    @classmethod
    def _from_data(cls, data: dict[str, Any], overrides: list[str] | None, file_format: str) -> Config:
        """``from_dict`` for data read from a file of ``file_format`` ("yaml", "toml", "json"; "": given in Python),
        which the errors' quoting hints follow."""
        # Deep copy, JSON types only; a TOML date becomes its text, which the key's type check then reports.
        data = json.loads(json.dumps(data or {}, default=str))
        source = _Source({}, file_format)
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"override {item!r}: expected key=value, e.g. ingest.fps=2")
            node = data
            *path, last = key.strip().split(".")
            for p in path:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"override {item!r}: {p!r} is not a section")
            node[last] = _parse_scalar(value.strip())
            source.overrides[key.strip()] = value.strip()
        return _build(cls, data, "", source)

    @classmethod
    def load(cls, path: str | os.PathLike | None, overrides: list[str] | None = None) -> Config:
        """``from_file`` when a path is given, else the defaults; ``overrides`` apply either way."""
        return cls.from_file(path, overrides) if path else cls.from_dict({}, overrides)

    @classmethod
    def from_file(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
        p = Path(path).expanduser()
        if not p.exists():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} is not a file: give a .toml, .yaml or .json file")
        suffix = p.suffix.lower()
        if suffix not in (".toml", ".yaml", ".yml", ".json"):
            raise ConfigError(f"config file {str(p)!r}: use .toml, .yaml or .json")
        file_format = {".yml": "yaml"}.get(suffix, suffix[1:])
        try:
            text = p.read_text(encoding="utf-8-sig")  # a byte order mark (Windows editors) is not content
            if not text.strip():  # an empty file is the defaults, whatever the format
                data = {}
            elif suffix in (".yaml", ".yml"):
                import yaml

                try:
                    data = yaml.load(text, Loader=_unique_key_loader(yaml)) or {}
                except yaml.MarkedYAMLError as e:  # its str() spans several lines and names "<unicode string>"
                    mark = e.problem_mark or e.context_mark
                    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
                    raise ConfigError(f"config file {str(p)!r} is malformed: {e.problem or e.context}{where}") from e
            elif suffix == ".toml":
                try:
                    import tomllib
                except ModuleNotFoundError:  # Python 3.10
                    import tomli as tomllib
                data = tomllib.loads(text)  # TOML itself refuses a key given twice
            else:
                data = json.loads(text, object_pairs_hook=_unique_keys)
        except _DuplicateKey as e:
            raise ConfigError(f"config file {str(p)!r}: {e}") from None
        except ConfigError:
            raise
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {str(p)!r} is not UTF-8 text ({e}); save it as UTF-8") from e
        except Exception as e:
            raise ConfigError(f"config file {str(p)!r} is malformed: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(p)!r}: the top level must be a table/mapping")
        return cls._from_data(data, overrides, file_format)


class _DuplicateKey(ValueError):
    """A key given twice in one table of a config file (from_file names the file)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (json keeps the last silently: the earlier value looks set)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"key {k!r} is given twice; keep one")
        out[k] = v
    return out


def _unique_key_loader(yaml):
    """A safe YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise _DuplicateKey(f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); keep one")
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def _parse_scalar(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        low = value.lower()
        return {"true": True, "false": False, "none": None, "null": None}.get(low, value)


@dataclass
class _Source:
    """Where the values being built came from, for the errors' hints: each --set override's key and text, and the
    format of the file that gave the rest ("yaml", "toml", "json"; "": a mapping given in Python)."""

    overrides: dict[str, str]
    file_format: str


# What --set accepts for a boolean key. Only --set: its values are text typed on a command line, where yes/1/on
# are as usual as true; a config file types its values (TOML and JSON booleans are true/false, and YAML already
# reads yes/no/on/off), so a quoted "yes" there stays an error.
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _read_bool(text: str, key: str) -> bool:
    """A --set value for a boolean key, in any case; ConfigError naming the key and the accepted words otherwise."""
    word = _BOOL_WORDS.get(text.strip().lower())
    if word is None:
        raise ConfigError(f"config key {key!r}: expected a boolean, got {text!r}; use true/false, yes/no, on/off "
                          f"or 1/0 (any case)")
    return word


def _read_number(text: str) -> Any:
    """``text`` as an int or float where Python reads it as one (``.5``, ``2.``, ``+2``, ``8_192``, ``1e2``), else
    ``text``: --set parses values as JSON, which refuses these, and YAML 1.1 reads ``1e2`` (no dot) as text."""
    for parse in (int, float):
        try:
            return parse(text.strip())
        except ValueError:
            pass
    return text


def _build(cls: type, data: dict[str, Any], prefix: str, source: _Source) -> Any:
    """Build dataclass ``cls`` from a mapping, checking unknown keys and types; errors name the full key."""
    if data is None and prefix.rstrip(".") not in source.overrides:
        data = {}  # a YAML section whose keys are all commented out is null; an empty TOML table is {}
    if not isinstance(data, dict):
        raise ConfigError(f"config key {prefix.rstrip('.') or '<root>'!r}: expected a table/mapping")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        name = sorted(unknown, key=str)[0]
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"did you mean {prefix + close[0]!r}? " if close else ""
        raise ConfigError(f"unknown config key {prefix + str(name)!r}; {hint}known: {', '.join(sorted(known))}")
    kwargs: dict[str, Any] = {}
    defaults = {f.name: f.default for f in fields(cls)}
    for name, value in data.items():
        key, hint = prefix + name, hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, key + ".", source)
        elif value is None and defaults[name] == "":  # `vlm:` in YAML, `--set models.vlm=null`: "none" is ""
            kwargs[name] = ""
        else:
            kwargs[name] = _coerce(value, hint, key, source)
    try:
        obj = cls(**kwargs)
        if prefix and hasattr(obj, "validate"):
            obj.validate(prefix.rstrip("."))
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'!r}: {e}") from e
    return obj


def _check_types(part: Any, prefix: str) -> None:
    """Type-check (and int -> float) the fields of a section built in Python, as ``_build`` does for mappings."""
    for name, hint in get_type_hints(type(part)).items():
        setattr(part, name, _coerce(getattr(part, name), hint, prefix + name))


def _coerce(value: Any, hint: Any, key: str, source: _Source | None = None) -> Any:
    """Accept ints for floats and None for optional values; reject everything else of the wrong type.

    Values read from --set or a file (``source``) are read by the key's type: text that is a number counts as one
    for a number key, and a float without a fraction (``1e1``) as an int for an int key; a --set value for a boolean
    key is read from its text (``_read_bool``). Python code passes types."""
    allowed = getattr(hint, "__args__", None) or (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"config key {key!r}: must not be empty")
    if source is not None and key in source.overrides and bool in allowed and str not in allowed:
        return _read_bool(source.overrides[key], key)  # the text as typed: JSON read 1 as a number, yes as text
    if source is not None and isinstance(value, str) and str not in allowed and (int in allowed or float in allowed):
        value = _read_number(value)
    for t in allowed:
        if t in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
            # inf/nan (or 1e400, which parses as inf) would overflow later and write non-JSON into manifests.
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an int beyond float range
                finite = False
            if not finite:
                raise ConfigError(f"config key {key!r}: must be a finite number, got {value!r}")
            if t is float:
                return float(value)
            if isinstance(value, int) or (source is not None and value.is_integer()):
                return int(value)
        if t is bool and isinstance(value, bool):
            return value
        if t is str and isinstance(value, str):
            return value
    names = "/".join(getattr(t, "__name__", str(t)) for t in allowed)
    quote = _quote_hint(value, key, source) if str in allowed else ""
    raise ConfigError(f"config key {key!r}: expected {names}, got {type(value).__name__} {value!r}{quote}")


def _quote_hint(value: Any, key: str, source: _Source | None) -> str:
    """How to give as text a value read as a number or boolean (a folder or model named 2024, YAML's ``no`` for
    Norwegian): quoting depends on where the value came from."""
    if source is None or type(value) not in (bool, int, float):
        return ""  # given in Python: the caller passes a str
    what = "a boolean" if type(value) is bool else "a number"
    if key in source.overrides:
        text = source.overrides[key]
        quoted = shlex.quote(f'{key}="{text}"')
        return f"; --set reads {text} as {what}: to pass it as text, quote it: --set {quoted}"
    name, text = key.rpartition(".")[2], json.dumps(value) if type(value) is bool else str(value)
    if source.file_format == "yaml" and type(value) is bool:
        return f"; YAML reads yes/no/on/off and true/false as booleans: quote the text, e.g. {name}: \"no\""
    example = {"yaml": f'{name}: "{text}"', "toml": f'{name} = "{text}"', "json": f'"{name}": "{text}"'}
    return f"; quote it to pass it as text: {example.get(source.file_format, repr(text))}"
