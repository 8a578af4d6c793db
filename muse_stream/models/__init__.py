"""Model artifacts: content-addressed storage, a registry of named versions, a shared booster cache."""

from muse_stream.models.registry import (
    ModelRecord,
    ModelRegistry,
    booster_load_counts,
    clear_booster_cache,
    load_booster,
    parse_booster,
)
from muse_stream.models.store import (
    ArtifactError,
    ArtifactStore,
    FileArtifactStore,
    RecordStore,
    open_store,
)

__all__ = [
    "ArtifactError",
    "ArtifactStore",
    "FileArtifactStore",
    "ModelRecord",
    "ModelRegistry",
    "RecordStore",
    "booster_load_counts",
    "clear_booster_cache",
    "load_booster",
    "open_store",
    "parse_booster",
]
