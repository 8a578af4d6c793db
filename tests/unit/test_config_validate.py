"""Offline validation of deployment files: every kind of bad config, each named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import EXAMPLE_TOML, write_topology

from muse_stream.cli import main
from muse_stream.config import ConfigError, load_deployment_file
from muse_stream.config.deployment import (
    DeploymentConfig,
    RecordError,
    RouteConfig,
    TenantConfig,
    decode_record,
    encode_value,
)

ROOT = Path(__file__).resolve().parents[2]


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_deployment_file(path)
    assert str(path) in str(caught.value)
    return [str(p) for p in caught.value.problems]


def edited(tmp_path: Path, old: str, new: str, extra: str = "") -> Path:
    path = write_topology(tmp_path, extra=extra)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_the_shipped_example_validates(capsys: pytest.CaptureFixture[str]) -> None:
    loaded = load_deployment_file(ROOT / "topologies" / "example.toml")
    assert {t.name for t in loaded.config.tenants} == {"bank-a", "bank-b", "bank-c"}
    assert {i.name for i in loaded.config.intents} == {"card-fraud", "account-takeover"}
    assert len(loaded.config.predictors) == 2 and len(loaded.artifacts) == 2
    assert main(["config", "validate", str(ROOT / "topologies" / "example.toml")]) == 0
    assert "valid: 3 tenants, 2 intents, 2 predictors, 4 routes" in capsys.readouterr().out
    shipped = [ROOT / "topologies" / "example.toml", *(ROOT / "topologies" / "example").rglob("*")]
    assert sum(p.stat().st_size for p in shipped if p.is_file()) < 200_000  # no large binaries in the repo


def test_the_shipped_example_versions_each_predictor_like_its_model() -> None:
    # Shadow and live results carry the predictor's version: fraud-v2 must not say "1".
    loaded = load_deployment_file(ROOT / "topologies" / "example.toml")
    versions = {p.name: (p.spec.version, p.spec.model.version) for p in loaded.config.predictors}
    assert versions == {"fraud-v1": ("1", "1"), "fraud-v2": ("2", "2")}


def test_unknown_predictor_is_a_route_to_nowhere(tmp_path: Path) -> None:
    path = edited(tmp_path, 'live = "fraud-v2"\n', 'live = "fraud-v9"\n')
    [problem] = problems_of(path)
    assert problem.startswith("route/bank-a/account-takeover:") and "'fraud-v9' is not declared" in problem


def test_missing_artifact_file_and_sha_mismatch(tmp_path: Path) -> None:
    path = edited(tmp_path, 'path = "models/fraud-gbm-2.json"', 'path = "models/nope.json"')
    problems = problems_of(path)
    assert any(p.startswith("model fraud-gbm:2:") and "nope.json cannot be read" in p for p in problems)
    assert any(p.startswith("predictor/fraud-v2:") and "matches no readable [[models]]" in p for p in problems)

    path = edited(tmp_path, 'path = "models/fraud-gbm-2.json"', 'path = "models/fraud-gbm-1.json"')
    problems = problems_of(path)
    assert any(p.startswith("predictor/fraud-v2:") and "matches no readable [[models]] artifact" in p for p in problems)

    path = edited(tmp_path, 'path = "models/fraud-gbm-1.json"', 'path = "models/fraud-gbm-1.json"\nsha256 = "' + "0" * 64 + '"')
    assert any("hashes to" in p and "not the pinned sha256" in p for p in problems_of(path))


def test_route_for_unknown_tenant_and_intent(tmp_path: Path) -> None:
    extra = '\n[[routes]]\ntenant = "bank-z"\nintent = "loans"\nlive = "fraud-v1"\n'
    problems = problems_of(write_topology(tmp_path, extra=extra))
    assert any(p.startswith("route/bank-z/loans:") and "tenant 'bank-z' is not declared" in p for p in problems)
    assert any(p.startswith("route/bank-z/loans:") and "intent 'loans' is not declared" in p for p in problems)


def test_duplicates_shadow_equal_to_live_and_all_problems_at_once(tmp_path: Path) -> None:
    extra = (
        '\n[[tenants]]\nname = "bank-a"\ndefault_intent = "card-fraud"\n'
        '\n[[routes]]\ntenant = "bank-b"\nintent = "card-fraud"\nlive = "fraud-v2"\n'
        '\n[[routes]]\ntenant = "bank-c"\nintent = "card-fraud"\nlive = "fraud-v1"\nshadows = ["fraud-v1"]\n'
        '\n[[tenants]]\nname = "Bank.D"\ndefault_intent = "card-fraud"\n'
    )
    problems = problems_of(write_topology(tmp_path, extra=extra))
    assert "tenant/bank-a: declared 2 times; declare each key once" in problems
    assert "route/bank-b/card-fraud: declared 2 times; declare each key once" in problems
    assert any(p.startswith("route/bank-c/card-fraud:") and "both live and a shadow" in p for p in problems)
    assert any(p.startswith("tenant/Bank.D:") and "no dots" in p for p in problems)
    assert len(problems) == 4


def test_default_intent_without_route_and_bad_toml(tmp_path: Path) -> None:
    path = edited(
        tmp_path, 'name = "bank-b"\ndefault_intent = "card-fraud"', 'name = "bank-b"\ndefault_intent = "account-takeover"'
    )
    assert any(p.startswith("tenant/bank-b:") and "add route/bank-b/account-takeover" in p for p in problems_of(path))
    bad = tmp_path / "bad.toml"
    bad.write_text("[[tenants]\nname=")
    assert "is not valid TOML" in problems_of(bad)[0]


def test_cli_validate_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = edited(tmp_path, 'live = "fraud-v2"\n', 'live = "fraud-v9"\n', extra="\n[unknown]\nx = 1\n")
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "route/bank-a/account-takeover" in err and "unknown: unknown section" in err


def test_deployment_config_refuses_inconsistency_and_records_round_trip() -> None:
    with pytest.raises(ValueError, match="route/bank-a/x: tenant 'bank-a' is not declared"):
        DeploymentConfig(routes=(RouteConfig(tenant="bank-a", intent="x", live="p"),))
    tenant = TenantConfig(name="bank-a", default_intent="card-fraud")
    key, entry = decode_record(b"tenant/bank-a", encode_value(tenant, 3))
    assert key == "tenant/bank-a" and entry == tenant
    assert decode_record(b"route/bank-a/card-fraud", None) == ("route/bank-a/card-fraud", None)
    for key, value, reason in (
        (b"tenant/bank-b", encode_value(tenant, 3), "not its key"),
        (b"tenant/bank-a", b"{not json", "not JSON"),
        (b"weird/x", b"{}", "unknown key kind"),
        (b"meta/version", None, "cannot be deleted"),
        (
            b"route/bank-a/card-fraud",
            encode_value({"tenant": "bank-a", "intent": "card-fraud", "live": "p", "shadows": ["p"]}, 1),
            "both live and a shadow",
        ),
    ):
        with pytest.raises(RecordError, match=reason):
            decode_record(key, value)
    assert "[[routes]]" in EXAMPLE_TOML


def test_a_misspelt_key_is_named_with_its_closest_key_first_and_nothing_follows_from_it(tmp_path: Path) -> None:
    """`shadow =` for `shadows =`: the typo is the problem, not a route that seems to be missing."""
    path = edited(
        tmp_path,
        'shadows = ["fraud-v2"]',
        'shadow = ["fraud-v2"]',
        extra='\n[[routes]]\ntenant = "bank-z"\nintent = "card-fraud"\nlive = "fraud-v1"\n',
    )
    problems = problems_of(path)
    assert problems[0] == "route/bank-a/card-fraud: unknown key 'shadow' (did you mean 'shadows'?)"
    assert not any("has no route" in p for p in problems)
    assert problems[1:] == ["route/bank-z/card-fraud: tenant 'bank-z' is not declared; declare it or remove the route"]

    path = edited(tmp_path, 'default_intent = "account-takeover"', 'default_intnet = "account-takeover"')
    [problem] = problems_of(path)
    assert problem.startswith("tenant/bank-c: unknown key 'default_intnet' (did you mean 'default_intent'?)")

    path = edited(tmp_path, 'spec = "predictors/fraud-v2.json"', 'specs = "predictors/fraud-v2.json"')
    [problem] = problems_of(path)  # and no route to a predictor that "is not declared"
    assert problem.startswith("predictor/fraud-v2: unknown key 'specs' (did you mean 'spec'?)")

    path = edited(tmp_path, '[[routes]]\ntenant = "bank-b"', '[[route]]\ntenant = "bank-b"')
    problems = problems_of(path)
    assert problems[0].startswith("route: unknown section 'route' (did you mean 'routes'?)")


def test_a_corrupt_model_file_is_named_as_such_not_as_a_hash_mismatch(tmp_path: Path) -> None:
    path = write_topology(tmp_path)
    (tmp_path / "models" / "fraud-gbm-2.json").write_bytes(b'{"learner": {"truncated')
    [problem] = problems_of(path)
    assert (
        problem.startswith("model fraud-gbm:2: model artifact ") and "fraud-gbm-2.json is not a loadable XGBoost model" in problem
    )
    assert "hash" not in problem and "sha256" not in problem
