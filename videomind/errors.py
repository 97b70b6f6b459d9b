"""The one error hierarchy of VideoMind.

Every error is plain data: a message that names the problem and says what to do next. Library code raises
these (``from`` the underlying cause); only the CLI and the app turn them into friendly output.
"""

from __future__ import annotations


class VideoMindError(Exception):
    """Base class: catch this to handle every error VideoMind raises on purpose."""


class ConfigError(VideoMindError, ValueError):
    """A configuration value is missing, of the wrong type or out of range. The message names the key."""


class InputError(VideoMindError):
    """The input file is missing, unreadable, empty, not a video, or otherwise unusable."""


class ModelNotFoundError(VideoMindError):
    """A model could not be resolved to weights on this machine.

    Attributes:
        name: the model that was asked for.
        capability: what it was meant to do (asr, ocr, text-embed, visual-embed, llm, vlm).
        looked: the places that were searched, in order.
        hint: how to get it.
    """

    def __init__(self, name: str, capability: str, looked: list[str], hint: str):
        self.name, self.capability, self.looked, self.hint = name, capability, list(looked), hint
        where = "; ".join(looked) if looked else "nowhere"
        super().__init__(f"{capability} model {name!r} not found (looked in: {where}). {hint}")


class CapabilityUnavailable(VideoMindError):
    """A capability (for example the VLM or text-to-image search) is not configured or cannot run here."""


class DependencyMissing(VideoMindError, ImportError):
    """An optional Python dependency is not installed; the message gives the pip command."""


class StoreError(VideoMindError):
    """A memory store is corrupt, incomplete or of another schema version; the message says how to rebuild."""


class ModelOutputError(VideoMindError):
    """A model produced output that could not be parsed even after a retry."""


class RebuildInterrupted(KeyboardInterrupt):
    """``ingest(rebuild=True)`` was interrupted (Ctrl-C); the message says what became of the rebuild and of the
    memory it was to replace, which depends on how far it had got (deleted, kept, or already swapped in). A
    KeyboardInterrupt still: whoever stops on Ctrl-C stops on it."""


def require(module: str, extra: str):
    """Import an optional dependency or raise DependencyMissing naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DependencyMissing(
            f"{module!r} is not installed: pip install 'videomind[{extra}]' (or run `make demo`, which installs "
            f"the offline pack)"
        ) from e
