"""schemas/ is generated from the pydantic models and must not drift from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from muse_stream.schemas import SCHEMA_MODELS, render

SCHEMAS = Path(__file__).parents[2] / "schemas"


@pytest.mark.parametrize("name", sorted(SCHEMA_MODELS))
def test_committed_schema_matches_its_model(name: str) -> None:
    path = SCHEMAS / f"{name}.schema.json"
    assert path.exists(), f"{path} is missing: run `muse schemas export`"
    assert path.read_text() == render(SCHEMA_MODELS[name]), f"{path} is stale: run `muse schemas export`"


def test_no_stray_schema_files() -> None:
    assert {p.name for p in SCHEMAS.glob("*.schema.json")} == {f"{n}.schema.json" for n in SCHEMA_MODELS}


def test_input_event_schema_states_the_contract() -> None:
    schema = json.loads((SCHEMAS / "input-event.schema.json").read_text())
    assert set(schema["required"]) == {"event_id", "features"}
    assert schema["properties"]["event_id"]["maxLength"] == 128
