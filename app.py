"""VideoMind in the browser: upload a video, watch it being ingested, ask questions, see the evidence.

    python app.py [--config videomind.toml] [--port 7860]

Gradio only: every action goes through the public API (``videomind.VideoMind``); this file holds no logic of
its own beyond turning results into widgets. Capabilities that are not available on this machine (a VLM,
text-to-image search) are named in a banner with how to enable them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from videomind import Answer, Config, VideoMind, VideoMindError, describe_models

logger = logging.getLogger("videomind.app")

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
MAX_UPLOAD_BYTES = 20 * 2**30


def capability_banner(config: Config) -> str:
    """Markdown: what serves each capability, and what is unavailable with how to enable it."""
    rows = describe_models(config.models, config.agent)
    lines = ["| capability | model | status |", "|---|---|---|"]
    for r in rows:
        status = "available" if r.available else f"**unavailable**: {r.detail}"
        lines.append(f"| {r.capability} | `{r.name}` | {status.replace('|', '/')} |")
    return "\n".join(lines)


def check_upload(path: str | None) -> Path:
    """Reject what is not plausibly a video before any decoder sees it (hostile or mistaken uploads)."""
    if not path:
        raise VideoMindError("no video uploaded: choose a file first")
    p = Path(path)
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoMindError(f"{p.name}: unsupported file type {p.suffix or '(none)'}; upload one of "
                             f"{', '.join(sorted(VIDEO_SUFFIXES))}")
    if p.is_symlink() or not p.is_file():
        raise VideoMindError(f"{p.name}: not a regular file")
    size = p.stat().st_size
    if size == 0:
        raise VideoMindError(f"{p.name} is empty (0 bytes): upload the complete file")
    if size > MAX_UPLOAD_BYTES:
        raise VideoMindError(f"{p.name} is larger than {MAX_UPLOAD_BYTES / 2**30:.0f} GiB: ingest it with the CLI")
    return p


def answer_markdown(answer: Answer) -> str:
    head = f"**({chr(65 + answer.choice)}) {answer.text}**" if answer.choice is not None else f"**{answer.text}**"
    return f"{head}\n\n_answered by: {answer.policy}_"


def evidence_rows(answer: Answer) -> list[list]:
    return [[e.timestamp(), e.source, round(e.score, 3), e.text[:300]] for e in answer.evidence]


class Session:
    """The app's state for one browser tab: the API object and the current memory."""

    def __init__(self, config: Config):
        self.vm = VideoMind(config)
        self.memory = None

    def ingest(self, path: str | None, progress=None) -> str:
        p = check_upload(path)

        def report(event):
            if progress is not None and event.total:
                progress(min(event.done / event.total, 1.0), desc=f"{event.stage}: {event.message}"[:80])

        self.memory = self.vm.ingest(p, progress=report)
        info = self.memory.info
        return f"Ingested **{p.name}** ({info.duration / 60:.1f} min). Ask a question below."

    def ask(self, question: str, options_text: str = "", until: float | None = None):
        """Yields (trace markdown, answer markdown, evidence rows, thumbnails) as the agent works."""
        if self.memory is None:
            raise VideoMindError("ingest a video first")
        options = [o.strip() for o in (options_text or "").splitlines() if o.strip()] or None
        trace: list[str] = []
        for item in self.vm.ask_stream(self.memory, question, options, until=until):  # 0 is a time, not "unset"
            if isinstance(item, Answer):
                thumbs = []
                for e in item.evidence[:4]:
                    thumbs += [(kf.thumbnail, f"{e.timestamp()}") for kf in
                               self.memory.keyframes_between(e.start, e.end + 1.0)[:1] if kf.thumbnail]
                yield "\n".join(trace), answer_markdown(item), evidence_rows(item), thumbs
            else:
                trace.append(f"- {item.summary()[:200]}")
                yield "\n".join(trace), "_thinking..._", [], []


def build_app(config: Config | None = None):
    import gradio as gr

    config = config or Config()

    def session() -> Session:
        return Session(config)

    with gr.Blocks(title="VideoMind") as demo:
        state = gr.State(session)
        gr.Markdown("# VideoMind\nAsk questions about long videos; every answer cites timestamped evidence.")
        with gr.Accordion("Models on this machine", open=False):
            gr.Markdown(capability_banner(config))
        with gr.Row():
            video = gr.Video(label="Video", sources=["upload"])
            with gr.Column():
                ingest_btn = gr.Button("Ingest", variant="primary")
                status = gr.Markdown()
        question = gr.Textbox(label="Question")
        options = gr.Textbox(label="Options (one per line, optional)", lines=3)
        until = gr.Number(label="Answer as of time (s), optional", value=None)
        ask_btn = gr.Button("Ask", variant="primary")
        answer = gr.Markdown()
        evidence = gr.Dataframe(headers=["time", "source", "score", "text"], label="Evidence", wrap=True)
        gallery = gr.Gallery(label="Keyframes at the evidence", columns=4, height=200)
        with gr.Accordion("Agent steps", open=False):
            trace = gr.Markdown()

        def on_ingest(s: Session, path, progress=gr.Progress()):
            try:
                return s.ingest(path, progress)
            except VideoMindError as e:
                raise gr.Error(str(e)) from e

        def on_ask(s: Session, q, opts, t):
            try:
                yield from s.ask(q, opts, t)
            except VideoMindError as e:
                raise gr.Error(str(e)) from e

        ingest_btn.click(on_ingest, [state, video], status)
        ask_btn.click(on_ask, [state, question, options, until], [trace, answer, evidence, gallery])
    return demo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = Config.load(args.config, args.set)
    # the size limit is enforced by the server while the upload streams in, not after it is on disk
    build_app(config).queue().launch(server_name=args.host, server_port=args.port, max_file_size=MAX_UPLOAD_BYTES)


if __name__ == "__main__":
    main()
