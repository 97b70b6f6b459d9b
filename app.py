"""VideoMind in the browser: upload a video, watch it being ingested, ask questions, see the evidence.

    python app.py [--config videomind.toml] [--port 7860]

Gradio only: every action goes through the public API (``videomind.VideoMind``); this file holds no logic of
its own beyond turning results into widgets. Capabilities that are not available on this machine (a VLM,
text-to-image search) are named in a banner with how to enable them.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from videomind import VIDEO_SUFFIXES, Answer, Config, VideoMind, VideoMindError, describe_models

logger = logging.getLogger("videomind.app")

MAX_UPLOAD_BYTES = 20 * 2**30
CONCURRENT_INGESTS = 2  # at once, of all users (--concurrent-ingests): a short clip need not wait for a long video
# at once, of all users (--concurrent-asks): one slow question (an LLM policy's tens of seconds) need not hold up
# everyone's. What asks share is safe from several threads: the models load under VideoMind's lock, a memory's
# store and index under its own, the local VLM takes one request at a time, and the LLM generates with a cache
# of each call's own (tests/test_app.py asks at once and gets the answers asked alone)
CONCURRENT_ASKS = 4
# gradio breaks table cells anywhere, so the narrow columns of the model table read "cap abili ty", "visual - embe d"
CSS = ".vm-models th, .vm-models td:not(:last-child), .vm-models code {overflow-wrap: normal; word-break: normal; " \
      "white-space: nowrap}"


def capability_banner(config: Config) -> str:
    """Markdown: what serves each capability (the model and where it comes from, as ``videomind models`` says),
    and what is unavailable with how to enable it."""
    rows = describe_models(config.models, config.agent)
    lines = ["| capability | model | status |", "|---|---|---|"]
    for r in rows:
        status = f"available: {r.detail}" if r.available else f"**unavailable**: {r.detail}"
        lines.append(f"| {r.capability} | `{r.name}` | {status.replace('|', '/')} |")
    return "\n".join(lines)


def capability_note(config: Config) -> str:
    """One line, always visible above the (collapsed) banner: which capabilities this machine lacks."""
    missing = [r.capability for r in describe_models(config.models, config.agent) if not r.available]
    if not missing:
        return "All capabilities are available (see _Models on this machine_)."
    return (f"**Not available on this machine: {', '.join(missing)}.** Open _Models on this machine_ for what "
            f"serves each capability and how to enable the rest.")


def parse_until(value: str | float | None) -> float | None:
    """The "answer as of" field: empty means the whole video; seconds (``90``) or a timestamp as the evidence
    shows them (``1:30``, ``1:02:03``). A text field, not gr.Number: the browser shows and sends an empty
    gr.Number as 0, which would silently answer every question as of 0 s, before anything was observed."""
    if value is None or isinstance(value, (int, float)):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + float(part)
    except ValueError:
        raise VideoMindError(f"answer as of {text!r}: give a time in the video as seconds (90) or M:SS (1:30), "
                             f"or leave it empty for the whole video") from None
    return seconds


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


def keyframe_image(path: str):
    """The keyframe thumbnail at ``path`` as an RGB PIL image, or None when it cannot be read (its memory deleted
    meanwhile: the answer is shown without it).

    The gallery is handed the image, which gradio writes into its own cache to serve, not the path: serving a path
    in the library needs the library among launch's allowed_paths, and gradio then serves every file in it to any
    client (the memory databases: transcripts and on-screen text of every video anyone ingested)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # read now: the file is closed when the gallery gets the image
    except OSError as e:
        logger.warning("keyframe %s not shown: %s", path, e)
        return None


def answer_markdown(answer: Answer) -> str:
    head = f"**({chr(65 + answer.choice)}) {answer.text}**" if answer.choice is not None else f"**{answer.text}**"
    return f"{head}\n\n_answered by: {answer.policy}_"


def evidence_rows(answer: Answer) -> list[list]:
    return [[e.timestamp(), e.source, round(e.score, 3), e.text[:300]] for e in answer.evidence]


class Session:
    """The app's state for one browser tab: the current memory, over the VideoMind all tabs share."""

    def __init__(self, vm: VideoMind | Config):
        """Args:
            vm: the shared VideoMind; a Config makes one of this session's own (a script's only session).
        """
        self.vm = vm if isinstance(vm, VideoMind) else VideoMind(vm)
        self.memory = None
        # The video the player shows, as forget() was last told. gradio runs the player's change event beside a
        # running ingest, so an ingest keeps its memory only if its video is still the one shown. A session that
        # never calls forget() (a script) keeps what it ingests.
        self.selected: str | None = None
        self._told = False
        self._lock = threading.Lock()  # the check and the store of an ingest against a forget() between them

    def __deepcopy__(self, memo) -> Session:
        """gr.State deep-copies the session its factory makes for each tab: the copy must share the VideoMind (a
        deep copy would copy every model it has loaded, per tab), and a new tab has no video yet."""
        return Session(self.vm)

    def ingest(self, path: str | None, progress=None) -> str:
        p = check_upload(path)

        def report(event):
            if progress is not None and event.total:
                # probing is done before any of the video is read: its 1/1 is not "100% ingested"
                fraction = 0.0 if event.stage == "probe" else event.fraction
                progress(fraction, desc=f"{event.stage}: {event.message}"[:80] if event.message else event.stage)

        try:
            memory = self.vm.ingest(p, progress=report)
        except VideoMindError as e:
            # the upload's server-side path (/tmp/gradio/<hash>/...) means nothing to the person who uploaded it
            raise VideoMindError(str(e).replace(str(p), p.name)) from e
        with self._lock:
            shown, selected = not self._told or self.selected == path, self.selected
            if shown:
                self.memory = memory
        if not shown:  # the questions are about the video shown now; this one's memory stays stored for later
            memory.close()
            now = "another video is selected now: click **Ingest** to read it" if selected else "no video is " \
                  "selected now"
            return f"Ingested **{p.name}**, but {now}."
        status = f"Ingested **{p.name}** ({memory.info.duration / 60:.1f} min). Ask a question below."
        # what ingestion could not observe (no audio, a truncated file's frames ending early), as the CLI says
        # after an ingest: a memory that looks complete may cover less than the video
        if notes := memory.notes():
            status += "\n\n" + "\n".join(f"- note: {note.replace(str(p), p.name)}" for note in notes)
        return status

    def forget(self, path: str | None) -> str:
        """A new video was chosen (or the old one removed): questions must not go on being answered from the
        memory of the previous one while the player shows this one, nor from that of an ingest still running."""
        with self._lock:
            self.selected, self._told = path, True
            self.memory = None
        return "Click **Ingest** to read this video into memory." if path else ""

    def close(self) -> None:
        """The tab is gone (gradio drops its state an hour after it closed): its memory's files are closed now,
        not whenever the garbage collector gets to them."""
        with self._lock:
            memory, self.memory = self.memory, None
        if memory is not None:
            memory.close()

    def ask(self, question: str, options_text: str = "", until: str | float | None = None):
        """Yields (trace markdown, answer markdown, evidence rows, thumbnails) as the agent works."""
        if self.memory is None:
            raise VideoMindError("ingest a video first")
        options = [o.strip() for o in (options_text or "").splitlines() if o.strip()] or None
        until = parse_until(until)
        trace: list[str] = []
        for item in self.vm.ask_stream(self.memory, question, options, until=until):  # 0 is a time, not "unset"
            if isinstance(item, Answer):
                thumbs: dict[str, str] = {}  # evidence items often overlap: show each keyframe once
                for e in item.evidence[:4]:
                    for kf in self.memory.keyframes_between(e.start, e.end + 1.0)[:1]:
                        if kf.thumbnail:
                            thumbs.setdefault(kf.thumbnail, e.timestamp())
                images = [(image, caption) for path, caption in thumbs.items()
                          if (image := keyframe_image(path)) is not None]
                yield "\n".join(trace), answer_markdown(item), evidence_rows(item), images
            else:
                trace.append(f"- {item.summary()[:200]}")
                yield "\n".join(trace), "_thinking..._", [], []


def build_app(config: Config | None = None, concurrent_ingests: int = CONCURRENT_INGESTS,
              concurrent_asks: int = CONCURRENT_ASKS):
    """The page; ``concurrent_ingests``, ``concurrent_asks``: how many ingests, asks (of all users) run at once,
    the others queue."""
    import gradio as gr

    config = config or Config()
    # one VideoMind for every tab: its models load once, on first use (a page that is only looked at loads none);
    # each call makes its own pipeline, policy and toolbox, and another ingest of a video being ingested waits
    # for it and reopens what it stored
    vm = VideoMind(config)

    def session() -> Session:
        return Session(vm)

    # uploads (hours of video each) and the evidence keyframes shown are files in gradio's cache: those older than
    # a day go, checked every hour
    with gr.Blocks(title="VideoMind", delete_cache=(3600, 86400)) as demo:
        state = gr.State(session, delete_callback=Session.close)
        gr.Markdown("# VideoMind\nAsk questions about long videos; every answer cites timestamped evidence.")
        gr.Markdown(capability_note(config))
        with gr.Accordion("Models on this machine", open=False):
            gr.Markdown(capability_banner(config), elem_classes=["vm-models"])
        with gr.Row():
            video = gr.Video(label="Video", sources=["upload"])
            with gr.Column():
                ingest_btn = gr.Button("Ingest", variant="primary")
                status = gr.Markdown(min_height=80)  # room for the progress bar drawn over it
        question = gr.Textbox(label="Question")
        options = gr.Textbox(label="Options (one per line, optional)", lines=3)
        until = gr.Textbox(label="Answer as of (optional)", placeholder="empty: the whole video; or a time in "
                           "the video, as seconds (90) or M:SS (1:30)")
        ask_btn = gr.Button("Ask", variant="primary")
        answer = gr.Markdown()
        evidence = gr.Dataframe(headers=["time", "source", "score", "text"], label="Evidence", wrap=True)
        # whole frames with their timestamps, four to a row however few there are (fit_columns would stretch two
        # keyframes to the full width and crop them, captions and all, to the height)
        gallery = gr.Gallery(label="Keyframes at the evidence", columns=4, fit_columns=False, object_fit="contain",
                             height="auto")
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

        def on_video(s: Session, path):
            return s.forget(path), "", "", [], []  # and the answer about the previous video goes with it

        def clear_status():
            return ""  # the progress bar is drawn over the status: the old text would show through it

        video.change(on_video, [state, video], [status, trace, answer, evidence, gallery])
        # gradio runs one call of an event at a time unless told: one user's 5-minute ingest held up everyone's
        ingest_btn.click(clear_status, None, status, queue=False).then(on_ingest, [state, video], status,
                                                                       concurrency_limit=concurrent_ingests)
        # Enter in the question box asks, as it does in every search box
        gr.on([ask_btn.click, question.submit], on_ask, [state, question, options, until],
              [trace, answer, evidence, gallery], concurrency_limit=concurrent_asks)
    return demo


def launch_options() -> dict:
    """gr.Blocks.launch arguments beyond host and port."""
    # the size limit is enforced by the server while the upload streams in, not after it is on disk. No
    # allowed_paths: allowing the library would serve its memory databases, manifests and stage caches to any
    # client; the evidence keyframes reach the gallery as images (keyframe_image), served from gradio's cache.
    return {"max_file_size": MAX_UPLOAD_BYTES, "css": CSS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--concurrent-ingests", type=int, default=CONCURRENT_INGESTS,
                   help=f"ingests (of all users) run at once; the others queue (default {CONCURRENT_INGESTS})")
    p.add_argument("--concurrent-asks", type=int, default=CONCURRENT_ASKS,
                   help=f"questions (of all users) answered at once; the others queue (default {CONCURRENT_ASKS})")
    args = p.parse_args()
    for name in ("concurrent_ingests", "concurrent_asks"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = Config.load(args.config, args.set)
    except VideoMindError as e:  # a missing file, an unknown key, a --set without '=': one line, as the CLI says it
        p.exit(2, f"error: {e}\n")
    build_app(config, args.concurrent_ingests, args.concurrent_asks).queue().launch(
        server_name=args.host, server_port=args.port, **launch_options())


if __name__ == "__main__":
    main()
