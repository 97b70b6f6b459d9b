"""A deterministic policy for models too small to plan (the bundled 135M LLM cannot).

It is honest about what it is: retrieval plus evidence scoring, no reasoning. It searches every memory at
several scales with the question and with each option, pools the evidence, and picks the option whose words and
meaning are best supported by evidence relevant to the question. Temporal-order questions ("which came first")
are answered from the times at which each option is best supported.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Iterator

from videomind.agents.steps import Step
from videomind.agents.textmatch import coverage
from videomind.agents.tools import Observation, Toolbox
from videomind.types import Answer, Evidence

logger = logging.getLogger(__name__)

NAME = "heuristic: multi-scale retrieval + evidence scoring (no LLM planning)"
_EARLY = re.compile(r"\b(first|earlier|earliest|before|sooner|begin(?:ning)?)\b", re.I)
_LATE = re.compile(r"\b(last|later|latest|after|final(?:ly)?|end)\b", re.I)
_ORDER = re.compile(r"\b(first|last|earlier|later|earliest|latest|before|after)\b", re.I)
# what was said or seen, as opposed to what memory wrote about it (summaries, entity rows): an open answer quotes these
DIRECT = ("speech", "subtitle", "ocr", "caption")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")


def _dedupe(evidence: list[Evidence]) -> list[Evidence]:
    seen, out = set(), []
    for e in sorted(evidence, key=lambda e: -e.score):
        key = e.id or (round(e.start, 1), round(e.end, 1), e.text)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


class EvidenceScorer:
    """Scores how well a statement is supported by each evidence row: lexical coverage + embedding similarity."""

    def __init__(self, embedder=None):
        self.embedder = embedder

    def similarity(self, queries: list[str], evidence: list[Evidence]):
        """cosine [len(queries), len(evidence)] (zeros without an embedder)."""
        import numpy as np

        if self.embedder is None or not evidence or not queries:
            return np.zeros((len(queries), len(evidence)), dtype=np.float32)
        q = self.embedder.embed(queries)
        e = self.embedder.embed([ev.text for ev in evidence])
        return q @ e.T

    def support(self, question: str, options: list[str], pool: list[Evidence]):
        """How well each row supports each option: (weighted [O, E], unweighted match [O, E]).

        Rows are weighted by their relevance to the question relative to the most relevant row, so an option
        word that also occurs in an unrelated sentence does not outweigh the sentence that answers.
        """
        import numpy as np

        rel = np.clip(self.similarity([question], pool)[0], 1e-6, None)  # [E]
        sem = self.similarity([f"{question} {o}" for o in options], pool)  # [O, E]
        lex = np.array([[coverage(o, e.text) for e in pool] for o in options])  # [O, E]
        match = lex + 0.5 * sem
        return match * ((rel / rel.max()) ** 2)[None, :], match


def _best_rows(row) -> list[int]:
    """Up to three rows carrying at least half the best support, best first."""
    import numpy as np

    return [int(i) for i in np.argsort(-row)[:3] if row[i] >= 0.5 * row.max() and row[i] > 0]


def supporting_evidence(toolbox: Toolbox, question: str, answer: str, pool: list[Evidence]) -> list[Evidence]:
    """The pool rows that best support ``answer`` (an option or a free-text answer), best first; [] when none."""
    if not pool or not answer.strip():
        return []
    support, _ = EvidenceScorer(getattr(toolbox.memory, "embedder", None)).support(question, [answer], pool)
    return [pool[i] for i in _best_rows(support[0])]


class HeuristicPolicy:
    name = NAME
    inspects = False  # it never calls inspect(): no VLM has to be loaded for it

    def __init__(self, scales: tuple[str | None, ...] = (None, "clip")):
        self.scales = scales

    def _search(self, toolbox: Toolbox, query: str, scale: str | None, index: int) -> tuple[Step, Observation]:
        t0 = time.perf_counter()
        args = {"query": query, "scale": scale}
        obs = toolbox.call("search_episodic", args)
        step = Step(index, "search_episodic", args, f"{len(obs.evidence)} results",
                    [e.id for e in obs.evidence], seconds=time.perf_counter() - t0)
        return step, obs

    def run(self, toolbox: Toolbox, question: str, options: list[str] | None = None) -> Iterator[Step | Answer]:
        options = list(options or [])
        queries = [question] + [f"{question} {o}" for o in options] + options
        pool: list[Evidence] = []
        steps: list[Step] = []
        for q in dict.fromkeys(queries):  # ordered, unique
            for scale in self.scales:
                step, obs = self._search(toolbox, q, scale, len(steps))
                steps.append(step)
                pool.extend(obs.evidence)
                yield step
        semantic = toolbox.call("search_semantic", {"query": question}) if hasattr(
            toolbox.memory, "search_semantic") else Observation("")
        pool.extend(semantic.evidence)
        pool = _dedupe(pool)
        t0 = time.perf_counter()
        answer = self.decide(toolbox, question, options, pool)
        answer.steps = steps
        final = Step(len(steps), "answer", {"choice": answer.choice, "text": answer.text,
                                             "evidence": [e.id for e in answer.evidence]},
                     answer.text, [e.id for e in answer.evidence], seconds=time.perf_counter() - t0)
        answer.steps.append(final)
        yield final
        yield answer

    def decide(self, toolbox: Toolbox, question: str, options: list[str], pool: list[Evidence]) -> Answer:
        import numpy as np

        scorer = EvidenceScorer(getattr(toolbox.memory, "embedder", None))
        if not pool:
            return Answer(question, "No evidence found in this video's memory.", None, options or None, [], [], NAME)
        if not options:
            return self._extract(toolbox, scorer, question, pool)

        support, match = scorer.support(question, options, pool)  # [O, E] each
        if _ORDER.search(question) and len(options) >= 2:
            choice, cols = self._temporal(question, options, pool, match)
        else:
            choice = int(np.argmax(support.max(axis=1)))
            cols = _best_rows(support[choice])  # the rows that carry the chosen option's support
        evidence = [pool[i] for i in cols]
        return Answer(question, options[choice], choice, options, evidence, [], NAME)

    def _extract(self, toolbox: Toolbox, scorer: EvidenceScorer, question: str, pool: list[Evidence]) -> Answer:
        """An open question: the most relevant sentence of the most relevant direct observation, cited at the
        time it was said or shown, beside the other most relevant rows (summaries and entities may be cited, but
        their text, 'Americans: mentioned 1x, ...', is no answer). Only without any direct row is a row of
        another kind quoted whole."""
        import numpy as np

        rel = scorer.similarity([question], pool)[0]  # [E] relevance of each row to the question
        lex = np.array([coverage(question, e.text) for e in pool])
        order = [int(i) for i in np.argsort(-(rel + lex), kind="stable")]
        direct = [i for i in order if pool[i].source in DIRECT]
        if not direct:
            best = [pool[i] for i in order[:3]]
            return Answer(question, best[0].text, None, None, best, [], NAME + " (extractive answer)")
        row = pool[direct[0]]
        used = _quote(toolbox, scorer, question, row)
        evidence = [used] + [pool[i] for i in order[:3] if i != direct[0]][:2]
        return Answer(question, used.text, None, None, evidence, [], NAME + " (extractive answer)")

    def _temporal(self, question: str, options: list[str], pool: list[Evidence], match) -> tuple[int, list[int]]:
        """Each option's time = start of its best-matching row; pick the earliest or latest as asked."""
        import numpy as np

        best_rows = match.argmax(axis=1)  # [O]
        strength = match.max(axis=1)  # [O]
        # Options never clearly mentioned (distractors) must not win by an accidental early weak match.
        found = strength >= 0.6 * strength.max()
        times = np.array([pool[i].start for i in best_rows], dtype=float)
        late = bool(_LATE.search(question)) and not _EARLY.search(question)
        times[~found] = -np.inf if late else np.inf
        choice = int(np.argmax(times) if late else np.argmin(times))
        return choice, [int(best_rows[choice])]


def _quote(toolbox: Toolbox, scorer: EvidenceScorer, question: str, row: Evidence) -> Evidence:
    """The sentence of ``row`` most relevant to the question, as evidence timed to the texts it came from.

    A clip row joins ~10 s of texts; the answer is its best sentence, and the evidence spans the stored texts
    (ASR segments, subtitle cues, OCR lines) of the row's source that the sentence was read from, so the time
    shown is when it was said. Without stored texts to narrow to, the row's own span is kept."""
    import numpy as np

    sentences = [s.strip() for s in _SENTENCE_END.split(row.text) if s and s.strip()]
    if len(sentences) > 1:
        sim = scorer.similarity([question], [Evidence(row.start, row.end, row.source, s, 0.0) for s in sentences])[0]
        score = np.array([coverage(question, s) for s in sentences]) + sim
        text = sentences[int(np.argmax(score))]
    else:
        text = row.text.strip()
    start, end = row.start, row.end
    texts_between = getattr(toolbox.memory, "texts_between", None)
    if texts_between is not None and text != row.text.strip():
        parts = [t for t in texts_between(row.start, row.end, sources=[row.source])
                 if row.start - 1e-3 <= t.start and t.end <= row.end + 1e-3
                 and (t.text.strip() in text or text in t.text or coverage(t.text, text) >= 0.5)]
        if parts:
            start, end = min(t.start for t in parts), max(t.end for t in parts)
    return Evidence(start, end, row.source, text, row.score, row.id)
