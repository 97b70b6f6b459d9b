"""Render a script (script.py) to an MP4: espeak-ng narration placed sample-exactly into one WAV, and the pictures
from one ffmpeg filter graph (lavfi sources -> concat -> drawtext), encoded with bit-exact flags.

One filter graph is about twice as fast as one ffmpeg run per scene plus the concat demuxer (measured: 6.3 s vs
12.2 s for 10 minutes), and it needs no intermediate files. Most of the time goes to x264 (superfast: as small
as veryfast here, 25% faster) and AAC (the "fast" coder is 3x faster than the default).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from eval.synth.script import FPS, HEIGHT, WIDTH, frames
from videomind import DependencyMissing, default_home

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
VOICE, RATE_WPM, WORD_GAP = "en-us", 130, 3  # slow, clear speech that Whisper tiny.en transcribes well
SAMPLE_RATE = 22050  # espeak-ng's native rate; the audio track is mono at this rate
X264 = ["-c:v", "libx264", "-preset", "superfast", "-crf", "30", "-pix_fmt", "yuv420p", "-g", str(10 * FPS),
        "-threads", "1"]
AAC = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "48k", "-ac", "1"]
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]


class MissingTool(DependencyMissing):
    """A system tool the generator needs is not installed; the message names the apt package. A VideoMindError,
    so callers that report VideoMind errors (the CLI, make demo) print it without a traceback."""


def check_tools() -> None:
    """Raise MissingTool naming the Debian/Ubuntu package when ffmpeg, espeak-ng or the font is missing."""
    missing = [(tool, pkg) for tool, pkg in (("ffmpeg", "ffmpeg"), ("ffprobe", "ffmpeg"), ("espeak-ng", "espeak-ng"))
               if shutil.which(tool) is None]
    if not Path(FONT).is_file():
        missing.append((FONT, "fonts-dejavu-core"))
    if missing:
        pkgs = " ".join(sorted({p for _, p in missing}))
        what = ", ".join(t for t, _ in missing)
        raise MissingTool(f"synthetic videos need {what}: install with `sudo apt-get install -y {pkgs}`")


def default_cache_dir() -> Path:
    """The espeak-ng sentence cache: ``VIDEOMIND_SYNTH_CACHE`` when set, else ``synth-tts`` in VideoMind's home
    (``VIDEOMIND_HOME``, by default ``~/.cache/videomind``) beside the memory library and the model caches."""
    if os.environ.get("VIDEOMIND_SYNTH_CACHE"):
        return Path(os.environ["VIDEOMIND_SYNTH_CACHE"])
    return default_home() / "synth-tts"


class Speaker:
    """espeak-ng sentences as int16 mono samples at SAMPLE_RATE, cached on disk by a hash of voice + text."""

    def __init__(self, cache_dir: Path | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
        self._salt = f"{version}|{VOICE}|{RATE_WPM}|{WORD_GAP}|{SAMPLE_RATE}"
        self._lengths: dict[str, int] = {}

    def _path(self, text: str) -> Path:
        h = hashlib.sha1(f"{self._salt}|{text}".encode()).hexdigest()
        return self.cache_dir / f"{h[:2]}" / f"{h}.wav"

    def _synthesise(self, text: str) -> Path:
        path = self._path(text)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".wav", dir=path.parent)
            os.close(fd)
            try:
                subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(RATE_WPM), "-g", str(WORD_GAP), "-w", tmp, text],
                               check=True, capture_output=True)
                audio = _read_wav(Path(tmp))  # normalise to SAMPLE_RATE mono int16
                _write_wav(Path(tmp), audio)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return path

    def prefetch(self, texts: list[str], workers: int = 2) -> None:
        todo = sorted({t for t in texts if not self._path(t).exists()})
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(self._synthesise, todo))

    def samples(self, text: str) -> np.ndarray:
        return _read_wav(self._synthesise(text))

    def duration(self, text: str) -> float:
        """The exact length in seconds of the sentence's audio (what the script uses as its span)."""
        if text not in self._lengths:
            with wave.open(str(self._synthesise(text))) as w:
                self._lengths[text] = w.getnframes()
        return self._lengths[text] / SAMPLE_RATE


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        rate, ch, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        data = w.readframes(w.getnframes())
    if width != 2:
        raise RuntimeError(f"{path}: expected 16-bit audio from espeak-ng, got {8 * width}-bit")
    x = np.frombuffer(data, dtype="<i2").reshape(-1, ch).mean(axis=1)
    if rate != SAMPLE_RATE:  # other espeak-ng builds or voices: resample linearly
        n = int(round(len(x) * SAMPLE_RATE / rate))
        x = np.interp(np.arange(n) * rate / SAMPLE_RATE, np.arange(len(x)), x)
    return np.round(x).astype(np.int16)


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(memoryview(np.ascontiguousarray(samples, dtype="<i2")).cast("B"))  # no copy


def render_audio(script: dict, speaker: Speaker, path: Path) -> None:
    """One mono WAV of the whole video: silence, with each sentence's samples at round(start * rate)."""
    canvas = np.zeros(int(round(script["duration"] * SAMPLE_RATE)), dtype=np.int16)
    for s in script["speech"]:
        x = speaker.samples(s["text"])
        i = int(round(s["start"] * SAMPLE_RATE))
        if i + len(x) > len(canvas):
            raise RuntimeError(f"sentence at {s['start']} s runs past the end of the video")
        canvas[i:i + len(x)] = x
    _write_wav(path, canvas)


def _source(scene: dict) -> str:
    """The lavfi source (plus per-scene drawing) of one scene; its local time t starts at 0."""
    size, kind, p = f"s={WIDTH}x{HEIGHT}:r={FPS}", scene["kind"], scene["params"]
    n = frames(scene["end"]) - frames(scene["start"])
    if kind in ("testsrc2", "smptebars"):
        src = f"{kind}={size}"
    elif kind == "mandelbrot":
        src = f"mandelbrot={size}:maxiter=256:start_scale={p['start_scale']}:end_scale={p['end_scale']}:end_pts={n}"
    elif kind == "gradients":
        cols = ":".join(f"c{i}={c}" for i, c in enumerate(p["colors"]))
        x0, y0, x1, y1 = p["points"]
        src = (f"gradients={size}:seed={p['seed']}:speed=0.03:nb_colors={len(p['colors'])}:{cols}"
               f":x0={x0}:y0={y0}:x1={x1}:y1={y1}")
    elif kind == "life":
        src = (f"life={size}:seed={p['seed']}:ratio=0.35:mold=8:life_color=0x7CFC00:death_color=0x101020:"
               f"mold_color=0x402060")
    elif kind == "cellauto":
        src = f"cellauto={size}:seed={p['seed']}:rule=110:random_fill_ratio=0.5"
    elif kind in ("color", "needle_color"):
        src = f"color=c={p['color']}:{size}"
    elif kind == "shapes":
        src = f"color=c={p['color']}:{size}"
        for b in p["boxes"]:
            sz, fx, fy, ph = b["size"], b["fx"], b["fy"], b["phase"]
            src += (f",drawbox=x='(iw-{sz})*(0.5+0.5*sin(t*{fx}+{ph}))':y='(ih-{sz})*(0.5+0.5*cos(t*{fy}+{ph}))'"
                    f":w={sz}:h={sz}:color={b['color']}:t=fill")
    else:
        raise ValueError(f"unknown scene kind {kind!r}")
    return f"{src},trim=end_frame={n},setpts=PTS-STARTPTS,format=yuv420p,setsar=1"


def _drawtext(sign: dict) -> str:
    text = sign["text"]
    if not all(c.isalnum() or c == " " for c in text):
        raise ValueError(f"sign text must be letters, digits and spaces: {text!r}")
    half = 0.5 / FPS  # enable on whole frames: [start, end)
    enable = f"enable='gte(t,{sign['start'] - half:.3f})*lt(t,{sign['end'] - half:.3f})'"
    if sign["role"] == "needle":  # large, centred, white on black
        style = "fontsize=40:fontcolor=white:box=1:boxcolor=black:boxborderw=10:x=(w-tw)/2:y=(h-th)/2"
    else:  # captions at the bottom
        style = "fontsize=28:fontcolor=white:box=1:boxcolor=black@0.85:boxborderw=8:x=(w-tw)/2:y=h-th-18"
    return f"drawtext=fontfile={FONT}:text='{text}':{style}:{enable}"


def filter_graph(script: dict) -> str:
    lines = [f"{_source(sc)}[v{i}];" for i, sc in enumerate(script["scenes"])]
    chain = "".join(f"[v{i}]" for i in range(len(script["scenes"])))
    chain += f"concat=n={len(script['scenes'])}:v=1:a=0"
    for sign in script["signs"]:
        chain += "," + _drawtext(sign)
    lines.append(chain + "[vout]")
    return "\n".join(lines)


def render_video(script: dict, speaker: Speaker, out: Path) -> None:
    """Write the MP4 (H.264 + AAC, bit-exact, no metadata) atomically to ``out``."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".synth-", dir=out.parent) as tmp:
        graph, wav, part = Path(tmp) / "graph.txt", Path(tmp) / "audio.wav", Path(tmp) / "video.mp4"
        graph.write_text(filter_graph(script))
        render_audio(script, speaker, wav)
        cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-filter_complex_threads", "1",
               "-filter_complex_script", str(graph), "-i", str(wav), "-map", "[vout]", "-map", "0:a",
               *X264, *AAC, *BITEXACT, "-t", f"{script['duration']:.3f}", "-movflags", "+faststart", str(part)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        os.replace(part, out)
