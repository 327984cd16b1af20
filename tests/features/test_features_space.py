"""FeatureSpace: fitting on several frames, transforming, errors, save/load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from towerrec.errors import ConfigError, DataFormatError, NotFittedError
from towerrec.features import (
    Discretize,
    FeatureSpace,
    Hashing,
    Lookup,
    Normalize,
    Passthrough,
    TextVectorizer,
)


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = pd.DataFrame(
        {
            "user_id": [1, 2, 2, 3, 2],
            "movie_title": ["Heat (1995)", "Up (2009)", "Heat (1995)", "Heat (1995)", "Up (2009)"],
            "timestamp": [100, 200, 300, 400, 500],
            "rating": [4.0, 3.0, 5.0, 1.0, 2.0],
        }
    )
    movies = pd.DataFrame({"movie_title": ["Heat (1995)", "Up (2009)", "Solaris (1972)"]})
    return ratings, movies


def make_space() -> FeatureSpace:
    return FeatureSpace(
        {
            "user_id": Lookup(),
            "movie_title": Lookup(),
            "title_tokens": TextVectorizer(column="movie_title", output_sequence_length=3),
            "timestamp_bucket": Discretize(num_bins=4, column="timestamp"),
            "timestamp": Normalize(),
            "rating": Passthrough(),
            "user_hash": Hashing(num_bins=5, column="user_id"),
        }
    )


def test_fit_concatenates_a_column_from_every_frame(frames):
    ratings, movies = frames
    space = make_space().fit(ratings, movies)
    # Heat: 3 in ratings + 1 in movies, Up: 2 + 1, Solaris only in movies
    assert space["movie_title"].vocabulary_ == ["Heat (1995)", "Up (2009)", "Solaris (1972)"]
    assert space["movie_title"].counts_ == [4, 3, 1]
    assert space["user_id"].vocabulary_ == [2, 1, 3]
    assert space["timestamp_bucket"].boundaries_ == [200.0, 300.0, 400.0]


def test_transform_returns_tensors_for_the_columns_present(frames):
    ratings, movies = frames
    space = make_space().fit(ratings, movies)
    batch = space.transform(ratings)
    assert list(batch) == space.names
    assert batch["user_id"].tolist() == [2, 1, 1, 3, 1]
    assert batch["movie_title"].tolist() == [1, 2, 1, 1, 2]
    assert batch["timestamp_bucket"].tolist() == [0, 1, 2, 3, 3]
    assert batch["title_tokens"].shape == (5, 3)
    assert batch["rating"].dtype == torch.float32
    assert batch["timestamp"].mean().abs() < 1e-6
    items = space.transform(movies)
    assert sorted(items) == ["movie_title", "title_tokens"]
    assert items["movie_title"].tolist() == [1, 2, 3]
    only = space.transform({"user_id": np.array([3, 99])}, names=["user_id"])
    assert list(only) == ["user_id"] and only["user_id"].tolist() == [3, 0]


def test_missing_columns_are_errors_that_name_them(frames):
    ratings, movies = frames
    space = FeatureSpace({"genre": Lookup(), "user_id": Lookup()})
    with pytest.raises(
        DataFormatError, match=r"no frame has column 'genre'.*frame 1: \['movie_title'\]"
    ):
        space.fit(ratings, movies)
    space = make_space().fit(ratings, movies)
    with pytest.raises(DataFormatError, match="needs column 'user_id'"):
        space.transform(movies, strict=True)
    with pytest.raises(DataFormatError, match="needs column 'timestamp'"):
        space.transform(movies, names=["movie_title", "timestamp"])
    with pytest.raises(DataFormatError, match="none of the features' columns"):
        space.transform(pd.DataFrame({"other": [1]}))
    with pytest.raises(KeyError, match="unknown feature name"):
        space.transform(ratings, names=["nope"])


def test_dtype_problems_name_feature_column_and_dtype(frames):
    ratings, _ = frames
    space = FeatureSpace({"title_norm": Normalize(column="movie_title")})
    with pytest.raises(
        TypeError, match=r"Feature 'title_norm' \(column 'movie_title', dtype str\)"
    ):
        space.fit(ratings)
    space = FeatureSpace({"user_id": Lookup()}).fit(ratings)
    with pytest.raises(TypeError, match=r"Feature 'user_id' \(column 'user_id', dtype str\).*int"):
        space.transform({"user_id": ["1"]})


def test_transform_before_fit_raises_not_fitted(frames):
    ratings, _ = frames
    with pytest.raises(NotFittedError, match=r"Feature 'user_id' \(Lookup\).*FeatureSpace\.fit"):
        FeatureSpace({"user_id": Lookup()}).transform(ratings)


def test_save_load_gives_the_same_outputs(frames, tmp_path):
    ratings, movies = frames
    space = make_space().fit(ratings, movies)
    path = tmp_path / "features.json"
    space.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["features.json"]  # no temporary files left
    doc = json.loads(path.read_text())
    assert doc["format"] == "towerrec.FeatureSpace" and doc["format_version"] == 1
    assert list(doc["features"]) == space.names
    loaded = FeatureSpace.load(path)
    assert loaded.names == space.names and loaded.columns == space.columns
    before, after = space.transform(ratings), loaded.transform(ratings)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert repr(loaded) == repr(space)
    doc["format_version"] = 2
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="newer"):
        FeatureSpace.load(path)


def test_mapping_protocol_and_repr(frames):
    ratings, movies = frames
    space = make_space()
    assert "user_id" in space and "nope" not in space and len(space) == 7
    assert list(space) == space.names
    assert space.column_of("title_tokens") == "movie_title"
    with pytest.raises(KeyError, match="No feature named 'nope'"):
        space["nope"]
    assert "size ? (not fitted)" in repr(space)
    space.fit(ratings, movies)
    text = repr(space)
    assert "movie_title: Lookup() <- column 'movie_title', size 4" in text
    assert "timestamp: Normalize() <- column 'timestamp'\n" in text
    assert "user_hash: Hashing(num_bins=5, column='user_id') <- column 'user_id', size 5" in text
    with pytest.raises(TypeError, match="must be a towerrec Transform"):
        FeatureSpace({"x": object()})
