"""The public Python API: ``VideoMind(config).ingest(path)`` then ``.ask(memory, question, options)``.

The CLI, the Gradio app and the evaluation harness all go through this class.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from videomind.config import Config
from videomind.errors import InputError, RebuildInterrupted, StoreError
from videomind.inputs import check_frame, check_question, check_until, local_file
from videomind.types import Answer

if TYPE_CHECKING:  # the ingest modules load on first use
    from videomind.ingest.follow import GrowingFile

logger = logging.getLogger(__name__)

VLM_FRAME_SIDE = 640  # longest side of the frames inspect() shows a VLM; the local engine caps vlm.frame_pixels


class VideoMind:
    """Ingests videos into persistent memories and answers questions about them.

    Models load lazily on first use and are shared across calls, so one instance serves many videos.
    """

    def __init__(self, config: Config | None = None, backend=None):
        """Args:
            config: the configuration (defaults: the offline model pack).
            backend: a ChatBackend to use instead of the one ``config.agent.backend`` names.
        """
        self.config = config or Config()
        self.config.validate()  # again: a field may have been set after the config was made (cfg.ingest.fps = 0)
        self._embedder = None
        self._backend = backend
        self._visual: dict | None = None
        self._vlm = None
        # Models are built one at a time: threads sharing this instance (the app's browser tabs) that need one at
        # once would each load a copy (two 7B LLMs), and the loser would stay in use by what it was built for.
        # Reentrant: building the VLM may build the agent's backend.
        self._building = threading.RLock()

    # -- components, built on first use ------------------------------------------------------------------------
    @property
    def embedder(self):
        with self._building:
            if self._embedder is None:
                from videomind.models.text_embed import SentenceTransformerEmbedder

                m = self.config.models
                self._embedder = SentenceTransformerEmbedder(m.text_embed, m.device, m.allow_download)
            return self._embedder

    def _visual_encoders(self) -> dict:
        """Query-side encoders for the memory's visual search, in the keyframes' embedding space: by example
        image always; by text only with a CLIP-type model (the perceptual descriptor cannot read text)."""
        with self._building:
            if self._visual is None:
                from videomind.ingest.visual import ClipEmbedder, make_embedder

                m = self.config.models
                emb = make_embedder(m.visual_embed, m.device, m.allow_download)
                visual = {"image_encoder": lambda image: emb.embed_images([image])[0]}
                if isinstance(emb, ClipEmbedder):
                    visual["text_to_image"] = lambda text: emb.embed_text([text])[0]
                self._visual = visual
            return self._visual

    @property
    def library(self):
        from videomind.memory.library import Library

        return Library(self.config.library_dir)

    def _load_backend(self):
        with self._building:
            if self._backend is None:
                from videomind.backends.registry import load_backend

                self._backend = load_backend(self.config)
            return self._backend

    def _capable_backend(self):
        """The chat backend when it is strong enough to plan and write memory, else None (never loads a weak
        model for nothing: the bundled 135M model is only loaded when policy=llm forces it)."""
        from videomind.models.registry import is_weak

        agent = self.config.agent
        if self._backend is None and (agent.policy == "heuristic" or (
                agent.backend == "offline" and is_weak(self.config.models.llm))):
            return None
        backend = self._load_backend()
        return None if backend.weak else backend

    def _policy(self):
        from videomind.agents.loop import choose_policy

        backend = self._capable_backend()
        if backend is None and self.config.agent.policy == "llm":
            backend = self._load_backend()
        return choose_policy(backend, self.config.agent)

    def _vlm_backend(self):
        """What looks at frames (inspect, captions): a given backend that takes images, the agent's own backend
        when it is the openai endpoint serving ``models.vlm`` or the local VLM (``agent.backend=vlm``), the local
        VLM engine for a local ``models.vlm``, else None."""
        if self._backend is not None and getattr(self._backend, "supports_images", False):
            return self._backend
        if not self.config.models.vlm:
            return None
        if self.config.agent.backend in ("openai", "vlm"):  # one model plans and looks
            return self._load_backend()
        with self._building:
            if self._vlm is None:
                from videomind.backends.hf_vlm import TransformersVLM

                self._vlm = TransformersVLM.from_config(self.config)
            return self._vlm

    def _captioner(self) -> Callable | None:
        """``caption(images, transcript)`` for the ingest pipeline when a VLM is configured and
        ``ingest.captions`` is on (loads the VLM), else None."""
        if not (self.config.models.vlm and self.config.ingest.captions):
            return None
        from videomind.agents.memory_writers import make_captioner

        return make_captioner(self._vlm_backend())

    def _memory_writers(self) -> dict:
        """LLM summaries and entity extraction for memory when a capable backend is configured."""
        backend = self._capable_backend()
        if backend is None:
            return {}
        from videomind.agents.memory_writers import make_entity_extractor, make_summarizer

        return {"summarizer": make_summarizer(backend), "entity_extractor": make_entity_extractor(backend)}

    # -- public verbs ------------------------------------------------------------------------------------------
    def ingest(self, path: str | Path, progress: Callable | None = None, rebuild: bool = False):
        """Turn a video into a persistent memory; a finished memory of the same file and settings is reopened.

        Args:
            path: a video file.
            progress: called with ``ProgressEvent``s (stage, done, total, message) as ingestion advances.
            rebuild: ingest the video again from the start; the stored memory (if any) is replaced when the new
                one is complete, and stays as it was when the rebuild is interrupted or fails (what the rebuild
                had stored is deleted).
        Returns:
            The ``VideoMemory``, complete and queryable.
        Raises:
            InputError: missing, empty, unreadable or non-video file.
            RebuildInterrupted: a rebuild was interrupted (a KeyboardInterrupt); its message says what was kept.
        """
        from videomind.ingest.pipeline import IngestPipeline

        path = local_file(path)
        if not path.exists():
            raise InputError(f"video file {str(path)!r} does not exist: check the path")
        pipeline = IngestPipeline(self.config, progress=progress)
        info = pipeline.probe(path)
        followed = None if rebuild else self._followed_memory(path, info)
        if followed is not None:
            return followed
        self._check_models(info, rebuild)
        pipeline.captioner = self._captioner()
        self._check_endpoints(info, rebuild)
        store_kw = {**self._visual_encoders(), **self._memory_writers()}
        memory = self.library.open_or_create(info, self.config, self.embedder, rebuild=rebuild, **store_kw)
        try:
            return self._fill(memory, pipeline, path, info, rebuild, store_kw)
        except BaseException as e:
            # A handle left open keeps the store's writer lock until the process exits (the lock module holds the
            # locked file), so another process could neither resume this ingest nor delete the store. What was
            # committed stays: the next ingest resumes after it. Not a rebuild's: the next one starts over, so
            # its unfinished store goes, and the memory it was to replace stays as it was.
            if not rebuild:
                memory.close()
                raise
            side = Path(memory.directory)
            deleted = self.library.abandon_rebuild(memory)
            if isinstance(e, KeyboardInterrupt) and not isinstance(e, RebuildInterrupted):
                raise RebuildInterrupted(self._abandoned(side, memory.key, deleted)) from e
            raise

    def _abandoned(self, side: Path, key: str, deleted: bool) -> str:
        """What an interrupted rebuild left, for its RebuildInterrupted: a Ctrl-C can arrive before the rebuild
        is complete (deleted), after it was swapped in (in finish_rebuild's reopen), or find it held elsewhere."""
        if deleted:
            return ("the rebuild was abandoned and what it had stored deleted; the memory stored before it (if any) "
                    "is unchanged")
        from videomind.memory.manifest import peek_manifest

        final = self.library.path(key)
        if (side == final or not side.exists()) and peek_manifest(final).get("complete"):
            return f"the rebuild had finished: the memory {key} is the rebuilt one"
        return (f"the rebuild was stopped and is kept in {side} (in use, or it could not be deleted; see the log); "
                f"the memory stored before it (if any) is unchanged: `videomind memories` lists it")

    def warm_up_ingest(self) -> None:
        """Load now the models :meth:`ingest` loads on first use: the text embedder, the visual encoder, Whisper
        and its voice detector (``ingest.asr``), the OCR engine (``ingest.ocr``), a VLM for captions and the memory
        writers' backend when configured. Optional: a caller timing ingests (the evaluation harness) calls it first,
        so the one-off load is not charged to whichever video comes first. Models already loaded stay as they are.

        Raises:
            ModelNotFoundError / DependencyMissing / CapabilityUnavailable: a configured model cannot be loaded.
        """
        import numpy as np

        from videomind.ingest.audio import SAMPLE_RATE
        from videomind.ingest.run import load_models
        from videomind.models.registry import check_device

        check_device(self.config.models.device)
        _ = self.embedder.dim
        self._visual_encoders()  # the pipeline's too: make_embedder shares a CLIP model within the process
        self._memory_writers()
        self._captioner()
        _, _, transcriber = load_models(self.config)  # the pipeline's visual embedder, OCR engine and Whisper
        if transcriber is not None:  # a second of silence: the voice detector loads on the first audio
            transcriber(np.zeros(SAMPLE_RATE, np.float32))

    def _fill(self, memory, pipeline, path: Path, info, rebuild: bool, store_kw: dict):
        """Run ``pipeline`` from the memory's resume point to the end of the video and finalize the memory."""
        if memory.is_complete:
            logger.info("memory of %s is complete; reopened without recomputation", path.name)
            return memory
        # ours from now on, not from the first chunk's commit minutes later; another ingest of this video in this
        # process waits here for this one to finish it
        with memory.writing():
            if memory.is_complete:  # finished by another ingest while this one waited or opened it
                logger.info("memory of %s was completed by another ingest; using it", path.name)
                return memory
            self._run_pipeline(memory, pipeline, path, info, rebuild)
        for note in memory.notes():  # complete, but not of everything: a truncated file, no audio, ...
            logger.warning("%s: %s", path.name, note)
        return self.library.finish_rebuild(memory, **store_kw) if rebuild else memory

    def _run_pipeline(self, memory, pipeline, path: Path, info, rebuild: bool) -> None:
        """Ingest the video from the memory's resume point into it and finalize it."""
        if memory.resume_point > 0:
            logger.info("resuming ingestion of %s at %.1f s", path.name, memory.resume_point)
        if info.content_hash:  # reuse the model stages of earlier ingests of this video under other settings
            from videomind.ingest.cache import StageCache

            pipeline.cache = StageCache(self.library.stage_cache_path(info.content_hash))
        chunks = pipeline.run(path, start_at=memory.resume_point, info=info, first_shot=memory.next_shot,
                              speech_from=self._stored_speech_end(memory))
        try:
            with contextlib.closing(chunks):  # stops the decoding threads when we return early
                for chunk in chunks:
                    try:
                        memory.add_chunk(chunk)
                    except StoreError:
                        # Another process finished this store while we decoded (where there is no writer lock,
                        # fcntl being POSIX): that is the memory asked for, not an attempt to add to a complete one.
                        if rebuild or not memory.is_complete:
                            raise
                        logger.info("memory of %s was completed by another ingest; using it", path.name)
                        return
            memory.finalize()
        finally:
            if pipeline.cache is not None:
                pipeline.cache.close()

    def _followed_memory(self, path: Path, info):
        """The finished memory that :meth:`follow` made of this recording (stored under the recording's key, not
        its content hash), when it covers the whole file: asking about a recording after following it must not
        ingest it all again. None otherwise, also for another recording written to the same path since."""
        from videomind.ingest.follow import same_recording
        from videomind.memory.library import store_key

        for keyed, manifest in self._recording_stores(path, info):  # decided on the manifests alone
            if manifest is None:
                return None
            if not (manifest.get("complete") and same_recording(manifest.get("recording"), path)):
                continue
            if float((manifest.get("video") or {}).get("duration") or 0.0) < info.duration - 1.0:
                return None  # it grew after the memory was finalized: ingested as a file
            key = store_key(keyed, self.config)
            logger.info("reopened the memory %s made while following %s", key, path.name)
            return self.library.open(key, self.embedder, **self._visual_encoders(), **self._memory_writers())
        return None

    def _recording_stores(self, path: Path, info) -> Iterator:
        """``(info keyed as the n-th recording followed at path, the manifest of its store)`` for n = 0, 1, ...:
        the manifest is {} when unreadable, and None for the first key without a store, the last one given."""
        from dataclasses import replace

        from videomind.ingest.follow import recording_key
        from videomind.memory.library import store_key
        from videomind.memory.manifest import peek_manifest

        for n in itertools.count():
            keyed = replace(info, duration=0.0, content_hash=recording_key(path, generation=n))
            directory = self.library.path(store_key(keyed, self.config))
            if not directory.is_dir():
                yield keyed, None
                return
            yield keyed, peek_manifest(directory)  # not opened: opening a store loads its indexes

    @staticmethod
    def _stored_speech_end(memory) -> float:
        """Where the stored speech ends: a Whisper segment belongs to the chunk it starts in and can run past its
        end, so a resumed run must not transcribe that tail again (segments are under 30 s long)."""
        r = memory.resume_point
        if r <= 0:
            return 0.0
        stored = memory.texts_between(max(0.0, r - 60.0), float("inf"), ["speech"])
        return max((t.end for t in stored), default=0.0)

    def _check_models(self, info, rebuild: bool = False) -> None:
        """Resolve the models this ingest needs, and load the text embedder, before any store is made: a typo in
        a model name or a missing GPU is reported as such instead of leaving an empty store behind. A complete
        memory that the configured text embedder made (its name in the manifest) is reopened without loading it:
        that took 7-9 s a process (importing sentence-transformers and torch), and questions load it when they
        first embed. Another name is refused by the store's open, as before; with a name unknown on either side
        the model's dimension is compared with the stored one.

        Raises:
            StoreError: the stored memory's vectors have another dimension than the text embedder's.
        """
        from videomind.errors import CapabilityUnavailable
        from videomind.models.registry import check_device, resolve, vlm_problem

        m, ing = self.config.models, self.config.ingest
        check_device(m.device)
        if ing.asr and info.has_audio:
            resolve(m.asr, "asr", m.allow_download)
        if ing.ocr:
            resolve(m.ocr, "ocr", m.allow_download)
        if m.vlm and ing.captions and self.config.agent.backend != "openai" and self._backend is None:
            if problem := vlm_problem(resolve(m.vlm, "vlm", m.allow_download)):
                raise CapabilityUnavailable(f"vlm {m.vlm!r} (captions): {problem}")
        stored = {} if rebuild else self._stored_manifest(info)
        models = stored.get("models") if isinstance(stored.get("models"), dict) else {}
        want, have = models.get("text_embed"), getattr(self.embedder, "name", None)
        if stored.get("complete") and want is not None and want == have:
            return
        dim = self.embedder.dim
        if (want is None or have is None) and models.get("text_dim") not in (None, dim):
            raise StoreError(f"the memory of {info.path} holds {models['text_dim']}-d text vectors, and the text "
                             f"embedder {have or type(self.embedder).__name__} gives {dim}-d ones: use the embedder "
                             f"it was built with, or ingest it again with --rebuild (Python: rebuild=True)")

    def _check_endpoints(self, info, rebuild: bool = False) -> None:
        """Ask each endpoint that will write this memory (summaries, entities, captions) for one token before a
        store is made or extended: a wrong agent.base_url or a server that is down is reported here, instead of
        every call of the ingest waiting through its retries and the memory being written by the offline
        fallbacks under the endpoint's settings. A complete memory is reopened without asking."""
        writers = [self._capable_backend()]
        if self.config.models.vlm and self.config.ingest.captions:
            writers.append(self._vlm_backend())
        checks = {id(b): b.check for b in writers if hasattr(b, "check")}
        if not checks or (not rebuild and self._stored_complete(info)):
            return
        for check in checks.values():
            check()

    def _stored_complete(self, info) -> bool:
        """Whether the memory of this video and settings is stored complete (read from its manifest alone)."""
        return bool(self._stored_manifest(info).get("complete"))

    def _stored_manifest(self, info) -> dict:
        """The manifest of the stored memory of this video and settings ({} when none or unreadable); opening the
        store would load its indexes."""
        from videomind.memory.library import store_key
        from videomind.memory.manifest import peek_manifest

        return peek_manifest(self.library.path(store_key(info, self.config)))

    def follow(self, path: str | Path, progress: Callable | None = None, poll: float = 1.0,
               idle_timeout: float = 10.0, stop=None) -> Iterator:
        """Ingest a recording that is still being written, yielding the memory after every committed chunk.

        Between yields the memory is queryable (``ask`` sees everything committed so far). Once the file has not
        grown for ``idle_timeout`` seconds (or ``stop``, a ``threading.Event``, is set) the last chunk is committed,
        the memory is finalized and yielded one last time (``is_complete``). Running it again on the same
        recording resumes after the last committed chunk; the store is keyed by the path and the recording's
        header, since the whole-file content hash changes while it grows. A memory that was finalized is not
        reopened: if the recording grew after that (by its header's duration, or for Matroska/WebM, which state none
        while they grow, by its packets past the memory's end), a warning says so and how to ingest the rest. A new
        recording written to the same path (told by the size and content hash a finalized memory records) gets a
        memory of its own; the earlier one stays.

        Raises:
            InputError: the file never became readable as a growing video (e.g. a plain MP4 still recording).
        """
        from videomind.ingest.follow import GrowingFile, recorded_length, same_recording

        path = local_file(path)
        source = GrowingFile(path, poll=poll, idle_timeout=idle_timeout, stop=stop)
        probed = source.wait_readable()
        for info, manifest in self._recording_stores(path, probed):
            if manifest is None or not manifest.get("complete") or same_recording(manifest.get("recording"), path):
                break  # a new store, one to resume, or the memory of this very recording
            logger.info("%s is not the recording the memory %s was made of (another one written to the same path): "
                        "following it into a memory of its own", path, manifest.get("key"))
        ingest = self.config.ingest
        memories = self._ingest_live(info, lambda start: source.frames(ingest.fps, ingest.frame_size, start),
                                     (lambda start: source.audio(start)) if info.has_audio else None, progress,
                                     recording=source)
        for i, memory in enumerate(memories):
            if i == 0 and memory.is_complete:  # finalized earlier: not reopened for appending (chapters closed)
                covered = memory.info.duration
                length = recorded_length(probed, since=covered)  # MKV/WebM state no duration while they grow
                if length > covered + ingest.chunk_seconds:
                    logger.warning("the memory of %s was finalized at %.0f s but the recording is now %.0f s long: "
                                   "the rest is not ingested; once it is finished, ingest it as a file (ingest(), "
                                   "CLI without --follow), or follow with a longer idle_timeout next time", path,
                                   covered, length)
            yield memory

    def ingest_stream(self, frames: Iterable, audio: Iterable | None = None, name: str = "live",
                      progress: Callable | None = None) -> Iterator:
        """Ingest a live source, yielding the memory after every committed chunk (queryable between yields).

        Args:
            frames: yields ``(t, rgb uint8 [H, W, 3])`` in time order, at any rate and size (a camera, a screen
                grabber); sampled to ``ingest.fps`` and scaled to ``ingest.frame_size``.
            audio: yields ``videomind.ingest.audio.AudioBlock`` s (16 kHz mono float32) from t = 0, or None.
            name: names the memory; use a new name per session.
        The memory is finalized (and yielded once more) when ``frames`` ends.

        Raises:
            InputError: a memory with this name already exists, or ``frames`` yields nothing.
        """
        import hashlib

        from videomind.memory.library import store_key
        from videomind.types import VideoInfo

        if not isinstance(name, str) or not name.strip():
            raise InputError(f"name={name!r}: give the memory a name (text), e.g. name='desk-cam-2024-05-01'")
        frames = iter(frames)
        first = next(frames, None)
        if first is None:
            raise InputError("the live source gave no frames")
        h, w = check_frame(first)  # before any store exists: a wrong source must not leave an empty one behind
        key = "stream-" + hashlib.sha256(name.encode()).hexdigest()[:28]
        info = VideoInfo(path=name, duration=0.0, width=int(w), height=int(h), fps=0.0, has_audio=audio is not None,
                         audio_stream=0 if audio is not None else None, n_audio_streams=int(audio is not None),
                         content_hash=key)
        key = store_key(info, self.config)
        if self.library.path(key).exists():
            raise InputError(f"a memory named {name!r} already exists ({key}): pass another name, or delete it to "
                             f"record over it: `videomind memories --delete {key}` (Python: library.delete({key!r}))")
        chained = itertools.chain([first], frames)
        yield from self._ingest_live(info, lambda start: chained, (lambda start: audio) if audio is not None else None,
                                     progress)

    def _ingest_live(self, info, frames: Callable, audio: Callable | None, progress,
                     recording: GrowingFile | None = None) -> Iterator:
        """The live loop: ``frames(start)`` / ``audio(start)`` give the source from the resume point on.
        ``recording``: the GrowingFile being followed, whose length ends the memory and whose identity the
        finalized memory records."""
        from videomind.ingest.follow import RecordingSubtitles, recording_identity
        from videomind.ingest.pipeline import IngestPipeline
        from videomind.memory.manifest import update_manifest

        captioner = self._captioner()  # loads a configured VLM before any store exists
        self._check_endpoints(info)
        memory = self.library.open_or_create(info, self.config, self.embedder, **self._visual_encoders(),
                                             **self._memory_writers())
        try:
            if not memory.is_complete:
                memory.start_writing()
                start = memory.resume_point
                pipeline = IngestPipeline(self.config, progress=progress, captioner=captioner)
                for chunk in pipeline.run_live(frames(start), None if audio is None else audio(start), start=start,
                                               first_shot=memory.next_shot,
                                               speech_from=self._stored_speech_end(memory),
                                               length=None if recording is None else recording.length,
                                               subtitles=None if recording is None else RecordingSubtitles(recording)):
                    memory.add_chunk(chunk)
                    yield memory
                memory.finalize(duration=memory.resume_point)
                if recording is not None:  # checked before the memory is reused for the file at that path
                    memory.manifest = update_manifest(memory.directory,
                                                      recording=recording_identity(recording.path))
        except GeneratorExit:
            # The caller stopped following: the memory it was given stays open for its questions, but no longer
            # holds the store's writer lock (held until the process exits otherwise), so another process can
            # resume the ingest or delete the store. Writing to it again takes the lock again.
            memory.stop_writing()
            raise
        except BaseException:  # failed: as in ingest(), close it; the committed chunks stay and resume
            memory.close()
            raise
        yield memory

    def ask_stream(self, memory, question: str, options: list[str] | None = None,
                   until: float | None = None) -> Iterator:
        """Yield each agent ``Step`` as it happens, then the final ``Answer``.

        Args:
            memory: a VideoMemory from :meth:`ingest` (or a video path, ingested on the way).
            question: the question.
            options: multiple-choice options; the answer's ``choice`` is then their 0-based index.
            until: answer as of this time (seconds): only memory observed before it is used.
        """
        from videomind.agents.tools import Toolbox

        from videomind.memory.store import VideoMemory

        question, options = check_question(question, options)
        until = check_until(until)
        if isinstance(memory, (str, Path)):  # the memory is ours: closed when answered, not left to the GC
            with contextlib.closing(self.ingest(memory)) as opened:
                yield from self.ask_stream(opened, question, options, until)
            return
        if not isinstance(memory, VideoMemory):
            raise InputError(f"memory must be what ingest() returned (or a video path), not "
                             f"{type(memory).__name__}")
        policy = self._policy()
        vlm = self._vlm_backend() if getattr(policy, "inspects", True) else None
        frames = None
        if vlm is not None:  # inspect() streams the span's frames, sharper than ingestion's (the VLM reads text)
            from videomind.ingest.decode import stream_frames

            path = memory.info.path
            frames = lambda t0, t1, fps: stream_frames(path, t0, t1, fps=fps, size=VLM_FRAME_SIDE)  # noqa: E731
        toolbox = Toolbox(memory, until=until, vlm=vlm, frames=frames, k=self.config.memory.top_k)
        yield from policy.run(toolbox, question, options)

    def ask(self, memory, question: str, options: list[str] | None = None, until: float | None = None) -> Answer:
        """Answer a question with timestamped evidence; see :meth:`ask_stream` for the arguments."""
        answer = None
        for item in self.ask_stream(memory, question, options, until):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None, "every policy ends with an Answer"
        return answer

    def models(self):
        """Which model serves each capability on this machine (rows of CapabilityStatus)."""
        from videomind.models.registry import describe

        return describe(self.config.models, self.config.agent)
