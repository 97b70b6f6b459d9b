"""Generate a benchmark video with ffmpeg (lavfi sources) and espeak-ng speech.

    python bench/ingest/make_video.py --minutes 10 --speech 0.5 --out /tmp/bench10.mp4

Scenes of ``--scene`` seconds cycle through moving lavfi sources (testsrc2, mandelbrot, life, colour + noise) with
a sign drawn on screen for part of each scene; ``--speech`` is the fraction of time with speech (espeak-ng reads
generated sentences at the start of each scene), 1.0 for speech-dense video. 640x360, 25 fps, H.264 + AAC.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SOURCES = [
    "testsrc2=size=640x360:rate=25",
    "mandelbrot=size=640x360:rate=25",
    "life=size=640x360:rate=25:mold=10:ratio=0.2:death_color=#202060:life_color=#e0c040",
    "color=c={color}:size=640x360:rate=25,noise=alls=20:allf=t",
]
COLORS = ["darkred", "navy", "darkgreen", "purple", "teal", "olive", "maroon", "slategray"]
WORDS = ("budget meeting rocket engine harbour garden violin museum lantern orbit canyon festival bridge "
         "satellite library camera river mountain station village").split()


def _run(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _sentence(rng: random.Random, i: int) -> str:
    a, b, c = rng.sample(WORDS, 3)
    return (f"In part {i + 1}, the {a} team explains how the {b} works. The code word for this part is {c}. "
            f"Remember that the {a} was delivered on day {rng.randint(2, 28)}.")


def _speech(text: str, tmp: Path, rate: int = 16000) -> np.ndarray:
    wav = tmp / "s.wav"
    subprocess.run(["espeak-ng", "-s", "165", "-w", str(wav), text], check=True)
    with wave.open(str(wav)) as w:
        a = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
        sr = w.getframerate()
    n = int(len(a) * rate / sr)
    return np.interp(np.linspace(0, len(a) - 1, n), np.arange(len(a)), a).astype(np.float32)


def make(out: Path, minutes: float, speech: float = 0.5, scene: float = 30.0, seed: int = 0) -> Path:
    rng = random.Random(seed)
    total = int(minutes * 60)
    n_scenes = int(np.ceil(total / scene))
    rate = 16000
    audio = np.zeros(total * rate, np.float32)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        parts = []
        for i in range(n_scenes):
            t0 = i * scene
            dur = min(scene, total - t0)
            # speech: sentences until this scene's speech budget is used
            budget, pos = speech * dur, 0.0
            while pos < budget - 1.0:
                s = _speech(_sentence(rng, i), tmp, rate)[: int((budget - pos) * rate)]
                a = int((t0 + pos) * rate)
                audio[a:a + len(s)] = s[: len(audio) - a]
                pos += len(s) / rate + 0.6
            src = SOURCES[i % len(SOURCES)].format(color=COLORS[i % len(COLORS)])
            sign = f"SIGN {i + 1} {rng.choice(WORDS).upper()} {rng.randint(10, 99)}"
            vf = (f"drawtext=fontfile={FONT}:text='{sign}':fontsize=40:fontcolor=white:box=1:boxcolor=black@0.6:"
                  f"x=(w-text_w)/2:y=h-80:enable='between(t,{dur * 0.3:.1f},{dur * 0.8:.1f})'")
            part = tmp / f"p{i:04d}.mp4"
            _run("-f", "lavfi", "-i", src, "-t", f"{dur}", "-vf", vf, "-c:v", "libx264", "-preset", "ultrafast",
                 "-g", "250", "-pix_fmt", "yuv420p", str(part))
            parts.append(part)
        (tmp / "list.txt").write_text("".join(f"file '{p}'\n" for p in parts))
        wav = tmp / "audio.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes((audio.clip(-1, 1) * 32767).astype(np.int16).tobytes())
        _run("-f", "concat", "-safe", "0", "-i", str(tmp / "list.txt"), "-i", str(wav), "-map", "0:v", "-map", "1:a",
             "-c:v", "copy", "-c:a", "aac", "-b:a", "64k", "-shortest", str(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--speech", type=float, default=0.5, help="fraction of time with speech (1.0: dense)")
    ap.add_argument("--scene", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    print(make(a.out, a.minutes, a.speech, a.scene, a.seed))


if __name__ == "__main__":
    main()
