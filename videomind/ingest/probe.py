"""Probe a media file: check it is a readable video, choose its video and audio streams and tell how long it is,
or explain what is wrong with it (a missing or empty file, an MP4 still being recorded, a still image, audio only,
no duration) and what to do next, often with the ffmpeg command that fixes it. Also the container clock every
decoder reports times on (``start_offset``) and the fast content key of a file (``content_hash``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
from pathlib import Path

from videomind.errors import InputError
from videomind.types import VideoInfo

logger = logging.getLogger(__name__)


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"video file {str(p)!r} does not exist; check the path")
    if not p.is_file():
        raise InputError(f"{str(p)!r} is not a file; pass a video file such as talk.mp4")
    if p.stat().st_size == 0:
        raise InputError(f"video file {str(p)!r} is empty (0 bytes); re-download or re-export it")
    return p


def open_container(path: str | os.PathLike):
    """Open ``path`` with PyAV, turning every failure into an :class:`InputError`."""
    import av

    p = _check_file(path)
    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        if _mp4_without_index(p):
            raise InputError(
                f"{str(p)!r} is an MP4/MOV without its index (the 'moov' box, written when a recording stops): "
                f"it is still being recorded or copied, or it is truncated (a recording cut off, a partial "
                f"download). Wait until it is finished, or download it again; to ingest a recording while it is "
                f"made, record to .ts or .mkv and use `videomind ingest --follow`") from e
        raise InputError(
            f"{str(p)!r} is not a readable media file (corrupt, truncated or not a video): "
            f"{getattr(e, 'strerror', None) or e}. "  # strerror: FFmpeg's reason without its errno and the path
            f"Check it plays, or re-encode it: ffmpeg -i in -c:v libx264 -c:a aac out.mp4"
        ) from e


def start_offset(container) -> float:
    """Seconds before the container's first timestamp. MPEG-TS and some Matroska files start at 1.4 s or later
    (muxer delay); players show that instant as 0:00, and so do we: every time we report is ``pts - offset``."""
    return max(0.0, float(container.start_time) / 1e6) if container.start_time else 0.0


def _mp4_without_index(p: Path, max_boxes: int = 1000) -> bool:
    """Whether ``p`` is an ISO media file (MP4/MOV/M4A: it opens with an 'ftyp' box) whose top-level boxes hold
    no 'moov': what a recorder leaves while it records, or when it is killed. Reads box headers only."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        pos = 0
        for i in range(max_boxes):
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return i > 0
            n, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if i == 0 and kind != b"ftyp":
                return False
            if kind == b"moov":
                return False
            if n == 1 and len(head) == 16:  # a 64-bit size follows the type
                n = int.from_bytes(head[8:16], "big")
            if n == 0 or pos + n >= size:  # the last box (size 0: "to the end of the file")
                return True
            if n < 8:
                return False  # not a box structure: some other damage
            pos += n
    return False


def content_hash(path: str | os.PathLike, size: int | None = None, block: int = 1 << 20) -> str:
    """A fast content key: SHA-256 over the size and the first, middle and last MiB (not the whole file).

    ``size``: of the file's first ``size`` bytes only, as if it ended there (a recording that has grown since)."""
    p = Path(path)
    size = p.stat().st_size if size is None else size
    h = hashlib.sha256(str(size).encode())
    with open(p, "rb") as f:
        for off in sorted({0, max(0, size // 2 - block // 2), max(0, size - block)}):
            f.seek(off)
            h.update(f.read(min(block, size - off)))
    return h.hexdigest()[:32]


_HMS = re.compile(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


def stream_end(stream) -> float | None:
    """Seconds (on the player's clock, after :func:`start_offset`) where ``stream``'s header says it ends: its
    start plus duration (MP4/MOV; MPEG-TS as libavformat estimates it), else the DURATION tag ffmpeg's Matroska/WebM
    muxer writes per track (the end of its last packet; mkvmerge's is "DURATION-eng"); None when it states neither
    (a file written to a pipe, or still being recorded: the tag is written when the recording stops)."""
    offset = start_offset(stream.container)
    if stream.duration and stream.time_base is not None:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base) - offset
    tag = next((v for k, v in stream.metadata.items() if k.upper().split("-")[0] == "DURATION"), "")
    m = _HMS.fullmatch(tag.strip())
    end = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else 0.0
    return end - offset if end > 0 else None


def select_video_stream(container) -> int | None:
    """Position (among video streams) of the best one: largest area, then most frames, ignoring cover art."""
    best, key = None, None
    for i, s in enumerate(container.streams.video):
        if s.disposition & 0x400:  # AV_DISPOSITION_ATTACHED_PIC: album art, not video
            continue
        cc = s.codec_context
        k = ((cc.width or 0) * (cc.height or 0), s.frames or 0, -i)
        if key is None or k > key:
            best, key = i, k
    return best


def select_audio_stream(container) -> int | None:
    """Position (among audio streams) of the best one for speech: highest sample rate, then channels, then first."""
    best, key = None, None
    for i, s in enumerate(container.streams.audio):
        cc = s.codec_context
        k = (cc.sample_rate or 0, cc.channels or 0, -i)
        if key is None or k > key:
            best, key = i, k
    return best


def media_duration(container, streams) -> float:
    """Seconds of picture and sound: where the last of ``streams`` (the chosen video and audio) ends, as the headers
    state it; 0.0 when they state nothing.

    Not the container's duration alone: Matroska's spans every track, and a subtitle track (or one not chosen)
    may run on past the last picture and sound, 16.6 s against 13.1 s for a NASA clip remuxed to MKV, where decoding
    then reported the 3.5 s without frames as a truncated file and the memory was listed as 0:17 long. That time
    holds nothing to ingest. The container's duration is the fallback, and the limit: a stream does not outlast
    its file."""
    whole = float(container.duration) / 1e6 if container.duration else 0.0
    ends = [stream_end(s) for s in streams]
    known = [e for e in ends if e is not None and e > 0]
    if not known:
        return whole
    if not whole:
        return max(known)
    return min(whole, max(known)) if len(known) == len(ends) else whole


def _is_still_image(container) -> bool:
    """An image demuxer (image2, png_pipe, jpeg_pipe, ...): a picture, even when renamed .mp4."""
    name = container.format.name or ""
    return name == "image2" or name.endswith("_pipe")


def _demuxed_end(container, streams) -> float:
    """Seconds (container clock) where the last packet of ``streams`` ends, reading packets only (no decoding).

    For files whose header has no duration: WebM from MediaRecorder, Matroska written to a pipe, raw .h264. A
    packet without a timestamp (raw elementary streams have none) follows the previous one of its stream."""
    ends: dict[int, float] = {}
    for pkt in container.demux(streams):
        if pkt.size == 0 or pkt.time_base is None:  # the flush packet at the end
            continue
        span = float((pkt.duration or 0) * pkt.time_base)
        i = pkt.stream.index
        t = float(pkt.pts * pkt.time_base) if pkt.pts is not None else ends.get(i, 0.0)
        ends[i] = max(ends.get(i, 0.0), t + span)
    return max(ends.values(), default=0.0)


def demuxed_length(info: VideoInfo, since: float = 0.0) -> float:
    """Seconds of media in ``info.path`` as far as its packets go (no decoding): the length of a recording whose
    header states none while it grows (Matroska/WebM). Only the packets from the keyframe at or before ``since`` on
    are read (all of them where the file cannot seek there); 0.0 when there are none.

    Raises:
        InputError: the file cannot be opened.
    """
    import av

    with open_container(info.path) as c:
        offset = start_offset(c)
        vs = c.streams.video[info.video_stream]
        streams = [vs] + ([c.streams.audio[info.audio_stream]] if info.audio_stream is not None else [])
        if since > 0:
            try:
                c.seek(int((since + offset) / vs.time_base), stream=vs, backward=True, any_frame=False)
            except av.error.FFmpegError as e:  # e.g. a raw stream: read it all
                logger.debug("%s: seek to %.1f s failed (%s); measuring from the beginning", info.path, since, e)
                return demuxed_length(info)
        return max(0.0, _demuxed_end(c, streams) - offset)


def probe(path: str | os.PathLike, measure: bool = True) -> VideoInfo:
    """Describe ``path`` and choose its streams, decoding one frame to prove the video is readable.

    Args:
        path: the video file.
        measure: when the header states no duration, read every packet to find it (I/O over the whole file, no
            decoding). ``--follow`` passes False: a growing file has no final duration yet (it then stays 0).

    Raises:
        InputError: missing, empty, unreadable, not a media file, a still image, no video stream, no decodable
            frame, or (``measure``) no way to tell the duration.
    """
    import av

    p = _check_file(path)
    with open_container(p) as c:
        if _is_still_image(c):
            raise InputError(f"{str(p)!r} is a still image ({c.format.name}), not a video; VideoMind needs a video. "
                             f"To make one from it: ffmpeg -loop 1 -i {shlex.quote(p.name)} -t 10 -pix_fmt yuv420p "
                             f"out.mp4")
        vi = select_video_stream(c)
        if vi is None:
            raise InputError(_no_video(p, c))
        ai = select_audio_stream(c)
        vs = c.streams.video[vi]
        rotation, width, height = 0, vs.codec_context.width, vs.codec_context.height
        try:
            frame = next(c.decode(vs))
            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
            width, height = frame.width, frame.height
        except (StopIteration, av.error.FFmpegError) as e:
            raise InputError(f"{str(p)!r}: its video stream has no decodable frame (corrupt or truncated): {e}") from e
        if rotation in (90, 270):
            width, height = height, width
        duration = media_duration(c, [vs] + ([c.streams.audio[ai]] if ai is not None else []))
        if measure and not duration > 0:
            with open_container(p) as whole:  # from the first packet: decoding a frame above consumed some
                streams = [whole.streams.video[vi]] + ([whole.streams.audio[ai]] if ai is not None else [])
                duration = _demuxed_end(whole, streams) - start_offset(whole)
            if not duration > 0:
                raise InputError(f"{str(p)!r}: cannot tell how long it is (no duration in its header and no "
                                 f"timestamps in its packets); remux it with one: ffmpeg -i "
                                 f"{shlex.quote(p.name)} -c copy out.mkv")
        fps = float(vs.average_rate or vs.guessed_rate or vs.base_rate or 0.0)
        return VideoInfo(
            path=str(p.absolute()), duration=duration, width=width, height=height, fps=fps,
            has_audio=ai is not None, video_stream=vi, audio_stream=ai,
            n_video_streams=len(c.streams.video), n_audio_streams=len(c.streams.audio),
            n_subtitle_streams=len(c.streams.subtitles), rotation=rotation, content_hash=content_hash(p),
        )


def _no_video(p: Path, container) -> str:
    """Why ``p`` has nothing to watch, and what to do about it."""
    if container.streams.audio:
        art = " (its only picture is cover art)" if container.streams.video else ""
        return (f"{str(p)!r} has no video stream{art}: it is audio only, and VideoMind needs a video. To ingest "
                f"its speech, give it a picture track (its waveform, as long as the sound): ffmpeg -i "
                f"{shlex.quote(p.name)} -filter_complex \"[0:a]showwaves=s=640x360:rate=5,format=yuv420p[v]\" "
                f"-map \"[v]\" -map 0:a -c:v libx264 -c:a aac {shlex.quote(p.stem + '-video.mp4')}")
    kinds = ", ".join(sorted({s.type for s in container.streams}))
    found = f"{kinds} streams only" if kinds else "no streams"
    fmt = container.format.long_name or container.format.name
    return (f"{str(p)!r} has no video stream and no audio (FFmpeg reads it as {fmt}: {found}): it is not a video; "
            f"check it is the file you meant, and that it downloaded completely")
