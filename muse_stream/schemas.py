"""JSON Schemas of the wire formats, generated from the pydantic models (the single source of truth).

`muse schemas export` rewrites `schemas/`; a test fails when a model changes and the files do not,
so what tenants and operators read always matches what the code accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from muse_stream.config.deployment import DeploymentConfig, VersionMarker
from muse_stream.events import (
    DeadLetter,
    InputEvent,
    LabelRecord,
    ScoreResult,
    ShadowResult,
)
from muse_stream.models.registry import ModelRecord
from muse_stream.predictors import PredictorSpec

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "input-event": InputEvent,
    "score-result": ScoreResult,
    "shadow-result": ShadowResult,
    "dead-letter": DeadLetter,
    "label-record": LabelRecord,
    "deployment-config": DeploymentConfig,
    "config-version-marker": VersionMarker,
    "predictor-spec": PredictorSpec,
    "model-record": ModelRecord,
}


def render(model: type[BaseModel]) -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema(mode="validation")}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMA_MODELS.items():
        path = directory / f"{name}.schema.json"
        path.write_text(render(model))
        written.append(path)
    return written
