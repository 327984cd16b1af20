"""Bundle export/load: exact round trip, integrity checks, atomic writes, custom towers."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import towerrec.serving.bundle as bundle_module
from towerrec.errors import BundleError, ConfigError
from towerrec.features import FeatureSpace, Lookup
from towerrec.models.movielens import MultitaskModel
from towerrec.serving import (
    Recommender,
    UnsupportedError,
    export,
    get_model_class,
    load,
    register_model,
)


def model_topk(trained, users, k, seen=None):
    """In-memory reference: [B] raw users -> ([B, k] raw item ids, [B, k] scores)."""
    space, model = trained.space, trained.model
    lookup = space["item_id"]
    raw_items = np.asarray(lookup.vocabulary_)
    internal = torch.arange(lookup.num_special, lookup.size)
    with torch.no_grad():
        q = model.user_model(space.transform({"user_id": users}, names=["user_id"])["user_id"])
        scores = (q @ model.item_model(internal).T).double().numpy()
    if seen is not None:
        for row, user in enumerate(users):
            mask = np.isin(raw_items, seen.get(user, []))
            scores[row, mask] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return raw_items[order], np.take_along_axis(scores, order, axis=1)


def rewrite_manifest(folder: Path, edit=None, rehash: bool = True) -> None:
    """Apply `edit` to the manifest and (optionally) recompute its file hashes and digest."""
    manifest = json.loads((folder / "manifest.json").read_text())
    if edit is not None:
        edit(manifest)
    if rehash:
        manifest["files"] = bundle_module._hash_files(folder)
        manifest["manifest_sha256"] = bundle_module._manifest_digest(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


# ------------------------------------------------------------------------------ round trip
def test_round_trip_matches_in_memory_model_exactly(trained, bundle_path):
    rec = Recommender.load(bundle_path)
    users = [int(u) for u in trained.ratings["user_id"].unique()[:7]]
    seen = trained.ratings.groupby("user_id")["item_id"].apply(list).to_dict()
    for exclude in (False, True):
        got = rec.recommend(users, k=10, exclude_seen=exclude)
        ids, scores = model_topk(trained, users, 10, seen if exclude else None)
        for row, result in enumerate(got):
            assert result.fallback is None
            assert result.ids == ids[row].tolist()
            np.testing.assert_allclose(result.scores, scores[row], rtol=1e-5, atol=1e-6)
    titles = dict(zip(trained.items["item_id"], trained.items["title"], strict=True))
    assert got[0].titles == [titles[i] for i in got[0].ids]


def test_manifest_lists_versions_parts_and_checksums(bundle_path):
    manifest = json.loads((bundle_path / "manifest.json").read_text())
    assert manifest["format"] == "towerrec.bundle"
    assert manifest["format_version"] == bundle_module.FORMAT_VERSION
    assert manifest["towerrec_version"]
    assert manifest["created"]
    assert manifest["parts"]["model"] == "registered"
    assert manifest["parts"]["seen"] and manifest["parts"]["items"]
    on_disk = sorted(
        p.relative_to(bundle_path).as_posix()
        for p in bundle_path.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    assert sorted(manifest["files"]) == on_disk
    for rel, info in manifest["files"].items():
        data = (bundle_path / rel).read_bytes()
        assert info == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_seen_items_are_stored_as_csr(trained, bundle_path):
    b = load(bundle_path)
    assert b.seen_indices.dtype == np.int32
    user = int(b.seen_users[3])
    positions = b.seen_indices[b.seen_indptr[3] : b.seen_indptr[4]]
    expected = set(trained.ratings.loc[trained.ratings["user_id"] == user, "item_id"])
    assert set(b.candidate_ids[positions].tolist()) == expected


# ------------------------------------------------------------------------------ integrity
def _spy_loaders(monkeypatch):
    calls = []
    monkeypatch.setattr(
        bundle_module.FeatureSpace, "load", classmethod(lambda cls, p: calls.append(p))
    )
    monkeypatch.setattr(bundle_module, "build_model", lambda *a: calls.append(a))
    return calls


def test_truncated_weights_raise_bundle_error_and_load_nothing(bundle_copy, monkeypatch):
    weights = bundle_copy / "model" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    calls = _spy_loaders(monkeypatch)
    with pytest.raises(BundleError, match=r"model/weights\.safetensors.*truncated"):
        load(bundle_copy)
    with pytest.raises(BundleError):
        Recommender.load(bundle_copy)
    assert calls == []


def test_missing_file_raises_bundle_error(bundle_copy, monkeypatch):
    (bundle_copy / "items.json").unlink()
    calls = _spy_loaders(monkeypatch)
    with pytest.raises(BundleError, match=r"missing its file 'items\.json'"):
        load(bundle_copy)
    assert calls == []


def test_missing_manifest_raises_bundle_error(bundle_copy):
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest\.json"):
        load(bundle_copy)


def test_edited_manifest_raises_bundle_error(bundle_copy, monkeypatch):
    def edit(manifest):
        manifest["candidates"]["count"] += 1

    rewrite_manifest(bundle_copy, edit, rehash=False)
    calls = _spy_loaders(monkeypatch)
    with pytest.raises(BundleError, match="edited"):
        load(bundle_copy)
    assert calls == []


def test_modified_file_fails_its_checksum(bundle_copy):
    path = bundle_copy / "candidates.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"candidates\.safetensors.*sha256"):
        load(bundle_copy)


def test_unknown_format_version_raises_bundle_error(bundle_copy):
    rewrite_manifest(bundle_copy, lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match="format_version 99"):
        load(bundle_copy)


def test_consistent_but_corrupt_part_raises_bundle_error_naming_it(bundle_copy):
    (bundle_copy / "popularity.safetensors").write_bytes(b"not a safetensors file")
    rewrite_manifest(bundle_copy)  # checksums agree with the damage
    with pytest.raises(BundleError, match=r"popularity\.safetensors"):
        load(bundle_copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a folder"):
        load(tmp_path / "nothing")
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        load(tmp_path)


# ------------------------------------------------------------------------------ atomic export
def test_failure_mid_export_leaves_no_target(trained, tmp_path, monkeypatch):
    real = bundle_module._save_tensors

    def failing(path, tensors):
        if path.name == "popularity.safetensors":
            raise RuntimeError("disk full")
        real(path, tensors)

    monkeypatch.setattr(bundle_module, "_save_tensors", failing)
    target = tmp_path / "out" / "bundle"
    with pytest.raises(RuntimeError, match="disk full"):
        export(trained.model, trained.space, target, items=trained.items)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_overwrite_keeps_the_old_bundle(trained, bundle_copy, monkeypatch):
    before = (bundle_copy / "manifest.json").read_bytes()
    monkeypatch.setattr(bundle_module, "_hash_files", lambda folder: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export(trained.model, trained.space, bundle_copy, overwrite=True)
    assert (bundle_copy / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in bundle_copy.parent.iterdir()) == ["copy"]


def test_existing_target_needs_overwrite_and_must_be_a_bundle(trained, bundle_copy, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite"):
        export(trained.model, trained.space, bundle_copy)
    export(trained.model, trained.space, bundle_copy, overwrite=True)
    assert load(bundle_copy).manifest["parts"]["items"] is False
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a towerrec bundle"):
        export(trained.model, trained.space, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------ other kinds
def test_string_ids_round_trip(tmp_path):
    ratings = pd.DataFrame(
        {
            "user": ["ann", "bob", "ann", "cy", "bob", "ann", "cy"],
            "item": ["x", "y", "y", "z", "w", "w", "x"],
            "rating": [5.0, 3.0, 4.0, 2.0, 1.0, 3.0, 4.0],
        }
    )
    space = FeatureSpace({"user": Lookup(), "item": Lookup()}).fit(ratings)
    model = MultitaskModel(
        space["user"].size, space["item"].size, dim=4, user_key="user", item_key="item"
    )
    path = export(model, space, tmp_path / "b", seen=ratings)
    b = load(path)
    assert b.candidate_ids.dtype == object
    assert sorted(b.candidate_ids.tolist()) == ["w", "x", "y", "z"]
    rec = Recommender(b)
    got = rec.recommend("ann", k=4)
    assert sorted(got.ids) == ["z"]  # ann saw x, y, w
    assert rec.recommend("zed", k=2).fallback == "popular"
    assert isinstance(rec.predict("bob", "x"), float)
    assert sorted(rec.seen_items("cy")) == ["x", "z"]


class ScaledTower(nn.Module):
    """A custom query tower: a user embedding times a learned scale."""

    def __init__(self, num_users: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_users, dim)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.embedding(features["user_id"]) * self.scale


def test_exported_custom_query_tower(trained, tmp_path):
    torch.manual_seed(0)
    tower = ScaledTower(trained.space["user_id"].size, 8)
    ids = np.arange(1, 31)
    items = np.random.default_rng(0).standard_normal((30, 8)).astype(np.float32)
    path = export(None, trained.space, tmp_path / "b", query_tower=tower, candidates=(ids, items))
    assert (path / "model" / "query_tower.pt2").is_file()
    assert not (path / "model" / "weights.safetensors").exists()
    rec = Recommender.load(path)
    users = [1, 2, 3]
    got = rec.recommend(users, k=5, exclude_seen=False)
    with torch.no_grad():
        q = tower(trained.space.transform({"user_id": users}, names=["user_id"])).numpy()
    expected = np.argsort(-(q @ items.T), axis=1, kind="stable")[:, :5]
    assert [r.ids for r in got] == ids[expected].tolist()
    with pytest.raises(UnsupportedError, match="no rating head"):
        rec.predict(1, 2)


def test_pt2_that_would_unpickle_is_refused(trained, tmp_path):
    tower = ScaledTower(trained.space["user_id"].size, 4)
    ids, items = np.arange(1, 31), np.ones((30, 4), dtype=np.float32)
    path = export(None, trained.space, tmp_path / "b", query_tower=tower, candidates=(ids, items))
    archive = path / "model" / "query_tower.pt2"
    with zipfile.ZipFile(archive) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    name = next(n for n in entries if n.endswith("data/weights/model_weights_config.json"))
    config = json.loads(entries[name])
    for meta in config["config"].values():
        meta["use_pickle"] = True
    entries[name] = json.dumps(config).encode()
    with zipfile.ZipFile(archive, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)
    rewrite_manifest(path)
    with pytest.raises(BundleError, match="pickled"):
        load(path)


def test_faiss_index_is_saved_and_used(trained, tmp_path, bundle_path):
    path = export(trained.model, trained.space, tmp_path / "b", index="flat", seen=trained.ratings)
    assert (path / "index" / "index.json").is_file()
    b = load(path)
    assert b.manifest["parts"]["index"] == "faiss"
    assert type(b.index).__name__ == "Faiss"
    exact = Recommender.load(bundle_path).recommend([1, 2, 3], k=5)
    approx = Recommender(b).recommend([1, 2, 3], k=5)
    assert [r.ids for r in approx] == [r.ids for r in exact]


def test_registry(trained, tmp_path):
    assert get_model_class("multitask") is MultitaskModel
    with pytest.raises(ConfigError, match="Unknown model name 'nope'"):
        get_model_class("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_model("multitask", nn.Linear)

    class Unregistered(MultitaskModel):
        pass

    model = Unregistered(trained.space["user_id"].size, trained.space["item_id"].size, dim=4)
    with pytest.raises(ConfigError, match="not a registered model"):
        export(model, trained.space, tmp_path / "x")
    register_model("test_unregistered_multitask", Unregistered)
    path = export(model, trained.space, tmp_path / "y")
    assert type(load(path).model) is Unregistered


def test_items_keyed_by_title_keep_their_titles():
    import pandas as pd

    from towerrec.features import FeatureSpace, Lookup

    items = pd.DataFrame(
        {"title": ["Heat (1995)", "Fargo (1996)"], "item_id": [6, 100], "genres": ["A", "B"]}
    )
    space = FeatureSpace({"item_id": Lookup(column="title")}).fit({}, items)
    ids = np.array(["Fargo (1996)", "Heat (1995)", "Unknown"], dtype=object)
    table = bundle_module._items_table(items, ids, space, "item_id")
    assert table["title"] == ["Fargo (1996)", "Heat (1995)", None]
    assert table["item_id"] == [100, 6, None] and table["genres"] == ["B", "A", None]
