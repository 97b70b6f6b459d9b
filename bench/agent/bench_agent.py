"""Agent accuracy on generated needle videos, beside two baselines run in the same script.

    python bench/agent/bench_agent.py --minutes 10 60 [--seeds 0 1 2] [--data ~/.cache/videomind-bench]
                                      [--time-questions]

For each duration a needle video is generated (cached) and ingested once with the offline models; then every
question is answered three ways, all with the same evidence scorer so that only the evidence gathering differs:
- agent: the configured policy (the heuristic multi-scale search for the offline default);
- uniform: transcript + on-screen text of uniformly spaced windows, no retrieval (a frame-sampling VLM's view);
- top-k: one retrieval of the question, top-k hits (Goldfish / Video-RAG style single shot).
Prints a markdown table of accuracy by task and writes the per-question rows as JSON. ``--time-questions`` adds
questions that name video times (``time_questions.py``: temporal grounding with time-range options, and
"which of these is mentioned at M:SS?").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.agent.time_questions import time_questions  # noqa: E402
from eval.synth import generate, load_samples  # noqa: E402
from videomind import Config, VideoMind  # noqa: E402
from videomind.agents.heuristic import HeuristicPolicy  # noqa: E402
from videomind.agents.tools import Toolbox, hits_to_evidence  # noqa: E402
from videomind.types import Evidence  # noqa: E402


def uniform_evidence(memory, n_windows: int = 8, window: float = 10.0) -> list[Evidence]:
    d = memory.info.duration
    out = []
    for i in range(n_windows):
        t0 = (i + 0.5) * d / n_windows - window / 2
        for t in memory.texts_between(max(t0, 0), t0 + window):
            out.append(Evidence(t.start, t.end, t.source, t.text, 1.0, f"{t.source}@{t.start:.1f}"))
    return out


def topk_evidence(memory, question: str, k: int = 5) -> list[Evidence]:
    return hits_to_evidence(memory.search(question, k=k))


def run(minutes: float, seed: int, data: Path, with_time_questions: bool = False) -> list[dict]:
    name = f"needle_{minutes:g}min_s{seed}"
    jsonl = data / f"{name}.samples.jsonl"
    if not jsonl.is_file():
        t = time.perf_counter()
        generate(data, minutes=minutes, seed=seed, name=name)
        print(f"generated {name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    samples = load_samples(jsonl)
    if with_time_questions:
        samples += time_questions(data / f"{name}.json", name, seed)
    vm = VideoMind(Config.from_dict({"library": str(data / "library")}))
    t = time.perf_counter()
    memory = vm.ingest(data / f"{name}.mp4")
    print(f"ingested {name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    scorer = HeuristicPolicy()
    toolbox = Toolbox(memory)
    uniform = uniform_evidence(memory)
    rows = []
    for s in samples:
        t = time.perf_counter()
        agent = vm.ask(memory, s["question"], options=s["options"])
        t_agent = time.perf_counter() - t
        base_u = scorer.decide(toolbox, s["question"], s["options"], uniform)
        base_k = scorer.decide(toolbox, s["question"], s["options"], topk_evidence(memory, s["question"]))
        rows.append({"video": name, "minutes": minutes, "qid": s["qid"], "task": s["task"],
                     "answer": s["answer"], "agent": agent.choice, "uniform": base_u.choice, "topk": base_k.choice,
                     "agent_seconds": round(t_agent, 3), "agent_steps": len(agent.steps),
                     "grounded": any(e.start <= b + 1 and e.end >= a - 1 for e in agent.evidence
                                     for a, b in s["spans"])})
    return rows


def table(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["minutes"], r["task"])].append(r)
        groups[(r["minutes"], "all")].append(r)
    lines = ["| video | task | n | agent | uniform windows | single-shot top-k | agent evidence in true span |",
             "|---|---|---|---|---|---|---|"]
    for (m, task), rs in sorted(groups.items()):
        acc = {k: sum(r[k] == r["answer"] for r in rs) / len(rs) for k in ("agent", "uniform", "topk")}
        grounded = sum(r["grounded"] for r in rs) / len(rs)
        lines.append(f"| {m:g} min | {task} | {len(rs)} | {acc['agent']:.2f} | {acc['uniform']:.2f} | "
                     f"{acc['topk']:.2f} | {grounded:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--data", type=Path, default=Path.home() / ".cache" / "videomind-bench")
    p.add_argument("--out", type=Path, default=None, help="write per-question rows here (JSON)")
    p.add_argument("--time-questions", action="store_true", help="add questions that name video times")
    args = p.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    rows = [r for m in args.minutes for seed in args.seeds for r in run(m, seed, args.data, args.time_questions)]
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
