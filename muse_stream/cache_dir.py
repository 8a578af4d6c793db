"""Where muse-stream caches what it can fetch again (Kafka's jars, model artifacts): one decision.

``MUSE_CACHE_DIR`` moves all of it (a test, a read-only home, a shared CI cache); else the
platform's user cache directory (``~/.cache/muse-stream`` on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

CACHE_DIR_ENV = "MUSE_CACHE_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or user_cache_dir("muse-stream"))
