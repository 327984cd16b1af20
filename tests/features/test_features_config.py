"""JSON round trips of every transform, the registry and config errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from towerrec.errors import ConfigError, NotFittedError
from towerrec.features import (
    Discretize,
    FeatureSpace,
    Hashing,
    Lookup,
    Normalize,
    Passthrough,
    TextVectorizer,
    Transform,
)

TEXTS = ["Toy Story (1995)", "Heat (1995)", "Toy Story 2", None]
CASES = [
    (
        Lookup(num_oov_buckets=2, mask_value=0, column="user"),
        [0, 5, 5, 7, 9, 9, 9],
        [0, 5, 7, 9, 11],
    ),
    (Lookup(max_tokens=4, min_count=1), ["x", "y", "y", "z", "w"], ["y", "x", "w", "q", None]),
    (Discretize(num_bins=3, strategy="quantile"), [1.0, 2.0, 3.0, 10.0], [0.0, 2.0, 2.5, 99.0]),
    (Discretize(boundaries=np.array([1.0, 2.5])), [0.0], [0.0, 1.0, 2.5, 3.0]),
    (Discretize(num_bins=10, strategy="linspace"), [874_724_710, 893_286_638], [880_000_000]),
    (Normalize(column="ts"), [1.0, 2.0, 4.0], [0.0, 2.0, 10.0]),
    (TextVectorizer(max_tokens=5, output_sequence_length=3), TEXTS, ["toy heat!", "story"]),
    (Hashing(num_bins=13, salt=2), ["a"], ["a", "b", 3]),
    (Passthrough(dtype="int64"), [1], [1, 2, 3]),
]


@pytest.mark.parametrize(("transform", "fit_values", "new_values"), CASES)
def test_json_round_trip_gives_the_same_outputs(transform, fit_values, new_values, tmp_path):
    transform.fit(fit_values)
    before = transform.transform(new_values)
    config = transform.to_config()
    assert config["type"] == type(transform).__name__
    again = Transform.from_config(json.loads(json.dumps(config)))
    assert type(again) is type(transform) and again.get_params() == config["params"]
    assert torch.equal(again.transform(new_values), before)
    path = tmp_path / "transform.json"
    transform.save(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "towerrec.Transform" and doc["format_version"] == 1
    loaded = type(transform).load(path)
    assert torch.equal(loaded.transform(new_values), before)
    assert repr(loaded) == repr(transform)
    if isinstance(transform, Lookup | Discretize | TextVectorizer | Hashing):
        assert loaded.size == transform.size


def test_int_vocabulary_stays_int_through_json(tmp_path):
    lookup = Lookup().fit([3, 1, 1])
    lookup.save(tmp_path / "l.json")
    loaded = Transform.load(tmp_path / "l.json")
    assert loaded.vocabulary_ == [1, 3] and all(type(v) is int for v in loaded.vocabulary_)
    assert loaded.transform([1, 3, 2]).tolist() == [1, 2, 0]
    with pytest.raises(TypeError, match="fitted on int values"):
        loaded.transform(["1"])


def test_unfitted_round_trip_stays_unfitted():
    config = Lookup(num_oov_buckets=3).to_config()
    assert config["state"] is None
    again = Transform.from_config(config)
    assert not again.is_fitted and again.num_oov_buckets == 3
    with pytest.raises(NotFittedError):
        again.transform(["a"])


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match=r"Unknown transform type 'Bogus'.*Known types"):
        Transform.from_config({"type": "Bogus"})
    with pytest.raises(ConfigError, match="Unknown parameter"):
        Transform.from_config({"type": "Lookup", "params": {"vocab": []}})
    with pytest.raises(ConfigError, match=r"Lookup\.from_config got a config of type 'Normalize'"):
        Lookup.from_config(Normalize().fit([1.0]).to_config())
    bad_state = Lookup().fit(["a"]).to_config()
    bad_state["state"]["vocabulary_"] = ["a", 2]
    with pytest.raises(ConfigError, match="Lookup state"):
        Transform.from_config(bad_state)
    missing = Normalize().fit([1.0]).to_config()
    del missing["state"]["var_"]
    with pytest.raises(ConfigError, match="missing"):
        Transform.from_config(missing)
    with pytest.raises(ConfigError, match="must be a dict"):
        Transform.from_config(["Lookup"])


def test_load_refuses_other_documents_and_newer_versions(tmp_path):
    space_path = tmp_path / "space.json"
    FeatureSpace({"a": Hashing(3)}).save(space_path)
    with pytest.raises(ConfigError, match=r"Use FeatureSpace\.load"):
        Transform.load(space_path)
    path = tmp_path / "t.json"
    Hashing(3).save(path)
    doc = json.loads(path.read_text())
    doc["format_version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="newer"):
        Transform.load(path)


def test_custom_transforms_register_themselves():
    class Doubled(Transform):
        """[N] numbers -> [N] float32 doubled numbers."""

        output_dtype = torch.float32

        def __init__(self, factor: float = 2.0, column: str | None = None) -> None:
            super().__init__(column=column)
            self.factor = factor

        def _transform(self, values: pd.Series) -> torch.Tensor:
            return torch.tensor(values.to_numpy(np.float32) * self.factor)

    again = Transform.from_config(Doubled(factor=3.0).to_config())
    assert isinstance(again, Doubled)
    assert again.transform([1.0, 2.0]).tolist() == [3.0, 6.0]
    with pytest.raises(ConfigError, match="already registered"):
        type("Lookup", (Transform,), {})
