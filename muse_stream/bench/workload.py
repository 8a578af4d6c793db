"""The benchmarks' synthetic workload: a fresh namespace per run and compact input events.

Every benchmark works in a fresh namespace (:func:`bench_names`) and deletes its topics at the end
(``muse_stream.clients.admin.delete_namespace``), so runs never see each other's records and the
broker does not fill up.
"""

from __future__ import annotations

import uuid

from muse_stream.synthetic import FEATURE_NAMES, generate_events
from muse_stream.topics import TopicNames


def bench_names(prefix: str = "bench") -> TopicNames:
    return TopicNames(f"{prefix}{uuid.uuid4().hex[:10]}")


def compact_features(n: int, *, seed: int) -> list[bytes]:
    """``n`` feature objects as JSON, the model's feature names with values rounded to 4 significant
    digits (binary features as 0/1): what a compact but honest client sends."""
    X, _ = generate_events(n, seed=seed)
    out = []
    for row in X.tolist():
        parts = []
        for name, value in zip(FEATURE_NAMES, row, strict=True):
            text = "0" if value == 0 else "1" if value == 1 else f"{value:.4g}"
            parts.append(f'"{name}":{text}')
        out.append(("{" + ",".join(parts) + "}").encode())
    return out


def event_payloads(n: int, *, seed: int = 0, prefix: str = "e", pool: int = 20_000) -> list[bytes]:
    """``n`` input events with unique ids; features cycle through a pool of ``pool`` distinct rows."""
    features = compact_features(min(n, pool), seed=seed)
    return [b'{"event_id":"%s%d","features":%s}' % (prefix.encode(), i, features[i % len(features)]) for i in range(n)]
