"""Multiple choice over a real memory whose observations are German, French and Chinese (speech, OCR,
subtitles): the lexical half of the evidence score must read those words, not only MiniLM."""

import numpy as np
import pytest

from videomind.agents.heuristic import HeuristicPolicy
from videomind.agents.tools import Toolbox
from videomind.config import Config
from videomind.types import Answer, Chunk, Keyframe, Shot, TimedText, VideoInfo

LINES = [
    (10.0, "speech", "Unser Kapitän heißt Jürgen Möller."),
    (20.0, "speech", "In Köln regnet es heute den ganzen Tag."),
    (30.0, "speech", "Das Passwort lautet Gänseblümchen."),
    (45.0, "speech", "Nous partons pour Genève demain matin."),
    (70.0, "speech", "Le chef s'appelle André Bézier."),
    (95.0, "speech", "Le mot de passe secret est « crème brûlée »."),
    (110.0, "subtitle", "我们在苏州吃了晚饭。"),
    (130.0, "ocr", "出口在三号楼"),
    (160.0, "subtitle", "会议改在杭州西湖边举行。"),
    (180.0, "subtitle", "密码是山茶花。"),
    (220.0, "subtitle", "明天在广州下大雨。"),
]


@pytest.fixture(scope="module")
def memory(tmp_path_factory, embedder):
    from videomind.memory.store import VideoMemory

    info = VideoInfo("reise.mp4", 240.0, 320, 180, 25.0, True, content_hash="reise")
    mem = VideoMemory.create(tmp_path_factory.mktemp("mem") / "reise", info, Config(), embedder)
    rng = np.random.default_rng(0)
    for i, c0 in enumerate(range(0, 240, 60)):
        texts = [TimedText(t, t + 4.0, s, src, 0.95 if src == "ocr" else None)
                 for t, src, s in LINES if c0 <= t < c0 + 60]
        kfs = []
        for t in range(c0, c0 + 60, 20):
            emb = rng.normal(size=16).astype(np.float32)
            kfs.append(Keyframe(float(t), i, rng.integers(0, 255, (24, 32, 3), dtype=np.uint8),
                                emb / np.linalg.norm(emb)))
        mem.add_chunk(Chunk(i, float(c0), c0 + 60.0, texts, kfs, [Shot(i, float(c0), c0 + 60.0)]))
    mem.finalize()
    return mem


@pytest.mark.parametrize("question, options, want, at", [
    ("Wie heißt unser Kapitän?", ["Jürgen Müller", "Jürgen Möller", "Jörg Möller", "Jürgen Mäller"], 1, 10.0),
    ("Wie lautet das Passwort?", ["Löwenzahn", "Gänseblümchen", "Sonnenblume", "Maiglöckchen"], 1, 30.0),
    ("Comment s'appelle le chef ?", ["André Bezier", "André Bézier", "Andrée Bézier", "André Bèzier"], 1, 70.0),
    ("Où partons-nous demain ?", ["Zürich", "Köln", "Genève", "Bâle"], 2, 45.0),
    # MiniLM alone picks 苏州 here (the ASCII tokenizer gave CJK text no tokens at all)
    ("会议在哪里举行？", ["苏州", "杭州", "广州", "福州"], 1, 160.0),
    ("Which password was said in Chinese?", ["山茶花", "玫瑰花", "Gänseblümchen", "crème brûlée"], 0, 180.0),
    ("出口在哪里？", ["一号楼", "二号楼", "三号楼", "四号楼"], 2, 130.0),
])
def test_picks_the_option_the_video_supports(memory, question, options, want, at):
    items = list(HeuristicPolicy().run(Toolbox(memory), question, options))
    ans = items[-1]
    assert isinstance(ans, Answer)
    assert ans.choice == want, (ans.text, ans.evidence)
    assert any(e.start <= at <= e.end for e in ans.evidence), ans.evidence
