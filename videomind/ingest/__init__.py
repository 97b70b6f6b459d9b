"""Streaming ingestion: a video -> chunks of timed observations (speech, subtitles, on-screen text, shots,
keyframes with visual embeddings, optional captions). Entry point: ``videomind.ingest.pipeline.IngestPipeline``.

Kept empty of imports on purpose: importing ``videomind.ingest`` loads no decoder or model.
"""
