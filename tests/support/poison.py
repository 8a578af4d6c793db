"""A corpus of bad input records, each with the reason it must be dead-lettered for."""

from __future__ import annotations

import orjson

from muse_stream.events import MAX_EVENT_BYTES, RejectReason
from muse_stream.synthetic import FEATURE_NAMES


def good_features(value: float = 0.5) -> dict[str, float]:
    return {name: value for name in FEATURE_NAMES}


def _event(**fields: object) -> bytes:
    base: dict[str, object] = {"event_id": "poison", "intent": "card-fraud", "features": good_features()}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not _DROP})


_DROP = object()
# The intent whose predictor rejects events with missing features (the others pass them as missing).
STRICT_INTENT = "strict-fraud"

POISON: list[tuple[str, bytes | None, RejectReason]] = [
    ("empty bytes", b"", RejectReason.EMPTY),
    ("null value (tombstone)", None, RejectReason.EMPTY),
    ("truncated JSON", b'{"event_id": "x", "features": {', RejectReason.MALFORMED_JSON),
    ("not JSON at all", b"hello tenant", RejectReason.MALFORMED_JSON),
    ("invalid UTF-8", b'{"event_id": "\xff\xfe", "features": {}}', RejectReason.MALFORMED_JSON),
    ("NaN literal", b'{"event_id": "x", "features": {"amount_log": NaN}}', RejectReason.MALFORMED_JSON),
    ("trailing garbage", _event() + b"}", RejectReason.MALFORMED_JSON),
    ("JSON array", b"[1, 2, 3]", RejectReason.NOT_AN_OBJECT),
    ("JSON string", b'"an event"', RejectReason.NOT_AN_OBJECT),
    ("JSON number", b"42", RejectReason.NOT_AN_OBJECT),
    ("JSON null", b"null", RejectReason.NOT_AN_OBJECT),
    ("missing event_id", _event(event_id=_DROP), RejectReason.SCHEMA_VIOLATION),
    ("numeric event_id", _event(event_id=12), RejectReason.SCHEMA_VIOLATION),
    ("empty event_id", _event(event_id=""), RejectReason.SCHEMA_VIOLATION),
    ("overlong event_id", _event(event_id="e" * 500), RejectReason.SCHEMA_VIOLATION),
    ("missing features", _event(features=_DROP), RejectReason.SCHEMA_VIOLATION),
    ("features is a list", _event(features=[1.0, 2.0]), RejectReason.SCHEMA_VIOLATION),
    ("string feature", _event(features={**good_features(), "amount_log": "12.5"}), RejectReason.SCHEMA_VIOLATION),
    ("boolean feature", _event(features={**good_features(), "amount_log": True}), RejectReason.SCHEMA_VIOLATION),
    ("nested feature", _event(features={**good_features(), "amount_log": {"v": 1}}), RejectReason.SCHEMA_VIOLATION),
    ("number too large for a double", b'{"event_id": "x", "features": {"amount_log": 1e400}}', RejectReason.MALFORMED_JSON),
    ("intent is a number", _event(intent=7), RejectReason.SCHEMA_VIOLATION),
    (
        "feature missing under a reject policy",
        _event(intent=STRICT_INTENT, features={n: 0.5 for n in FEATURE_NAMES[1:]}),
        RejectReason.MISSING_FEATURE,
    ),
    (
        "null feature under a reject policy",
        _event(intent=STRICT_INTENT, features={**good_features(), "amount_log": None}),
        RejectReason.MISSING_FEATURE,
    ),
    (
        "feature beyond the float32 range",
        _event(features={**good_features(), "velocity_1h": 1e39}),
        RejectReason.FEATURE_OUT_OF_RANGE,
    ),
    ("unknown intent", _event(intent="crypto-laundering"), RejectReason.UNKNOWN_INTENT),
    ("oversized record", _event(padding="x" * (MAX_EVENT_BYTES + 1)), RejectReason.OVERSIZED),
    # Near the input topic's limit: its dead letter (base64 + envelope) is larger than 1 MB.
    ("record near the input topic's size limit", _event(padding="y" * 900_000), RejectReason.OVERSIZED),
]
