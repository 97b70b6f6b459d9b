"""Time eval.synth and check its ground truth with the offline ASR and OCR models.

    python bench/synth_render.py --minutes 10 60 --out /tmp/synth-bench [--verify]

Renders each length with a cold espeak-ng cache (then once more warm), prints wall/CPU seconds, and with
--verify transcribes every planted sentence's span with faster-whisper (whisper-tiny.en) and OCRs the middle
frame of every sign with RapidOCR, printing the hit rates and every miss.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.synth import generate  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(x.ru_utime + x.ru_stime for x in r)


def _norm(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()) + " "


def verify(script_path: Path, video: Path) -> dict:
    import faster_whisper
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    from videomind.models.registry import resolve

    script = json.loads(script_path.read_text())
    model = faster_whisper.WhisperModel(resolve("whisper-tiny.en", "asr").path, device="cpu", compute_type="int8")
    audio = faster_whisper.decode_audio(str(video), sampling_rate=16000)
    asr_ok, asr_n, misses = 0, 0, []
    for n in script["needles"]:
        if n["task"] not in ("spoken_fact", "temporal_order"):
            continue
        for (t0, t1), planted in zip(n["spans"], n["planted"]):
            segs, _ = model.transcribe(audio[int(max(0, t0 - 0.5) * 16000): int((t1 + 0.5) * 16000)],
                                       language="en", beam_size=1, vad_filter=False)
            heard = _norm(" ".join(s.text for s in segs))
            keys = [k for k in n["keywords"] if n["task"] == "spoken_fact" or k in _norm(planted)]
            ok = any(f" {k} " in heard for k in keys)
            asr_ok, asr_n = asr_ok + ok, asr_n + 1
            if not ok:
                misses.append(f"ASR {planted!r} -> {heard.strip()!r}")
    ocr = RapidOCR()
    w, h = script["video"]["width"], script["video"]["height"]
    ocr_ok = {"needle": [0, 0], "caption": [0, 0]}
    for sign in script["signs"]:
        t = (sign["start"] + sign["end"]) / 2
        raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{t:.2f}", "-i", str(video), "-frames:v", "1", "-f",
                              "rawvideo", "-pix_fmt", "bgr24", "-"], capture_output=True, check=True).stdout
        result, _ = ocr(np.frombuffer(raw, np.uint8).reshape(h, w, 3))
        read = "".join(r[1] for r in (result or [])).replace(" ", "").upper()
        ok = sign["text"].split()[-1] in read  # the variable part: 42 of GATE 42 (OCR may read ROOM as RO0M)
        ocr_ok[sign["role"]][0] += ok
        ocr_ok[sign["role"]][1] += 1
        if not ok:
            misses.append(f"OCR {sign['text']!r} -> {read!r}")
    return {"asr": f"{asr_ok}/{asr_n}", "ocr_needle_signs": "{}/{}".format(*ocr_ok["needle"]),
            "ocr_captions": "{}/{}".format(*ocr_ok["caption"]), "misses": misses}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/synth-bench")
    ap.add_argument("--verify", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    for minutes in args.minutes:
        cache = out / f"cache-{minutes:g}"
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        for label in ("cold", "warm"):
            c0, t0 = _cpu(), time.perf_counter()
            res = generate(out, minutes, args.seed, cache_dir=cache, force=True)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            size = res.video.stat().st_size / 1e6
            print(f"{minutes:g} min {label}: {wall:.1f} s wall, {cpu:.1f} s CPU, {size:.1f} MB", flush=True)
        if args.verify:
            print(json.dumps(verify(res.script, res.video), indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
