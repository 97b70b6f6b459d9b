"""Memory: episodic (clip -> segment -> chapter), semantic (entities) and visual (keyframes) memories of a video,
stored durably per video, with hybrid multi-scale retrieval. Import from the defining modules:

    from videomind.memory.store import VideoMemory, Hit
    from videomind.memory.library import Library
"""
