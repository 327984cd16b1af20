"""Download, checksum, cache and safe extraction, with local files only (file:// URLs)."""

from __future__ import annotations

import hashlib
import importlib
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from towerrec.data import MovieLensNotFoundError, movielens, synthetic_movielens, write_movielens
from towerrec.data.movielens import REMOTES, Remote, cache_root, download_file, safe_extract
from towerrec.errors import ChecksumError, DataFormatError

# The package exports the function `movielens`, which shadows the module attribute.
ml_module = importlib.import_module("towerrec.data.movielens")
SIZE = {"num_users": 10, "num_items": 8, "num_ratings": 40, "seed": 1}


def _zip_folder(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, f"{folder.name}/{file.name}")
    return zip_path


def _local_remote(tmp_path: Path, sha256: str | None = None) -> tuple[Remote, Path]:
    folder = write_movielens(tmp_path / "source", "100k", **SIZE)
    zip_path = _zip_folder(folder, tmp_path / "ml-100k.zip")
    data = zip_path.read_bytes()
    digest = sha256 or hashlib.sha256(data).hexdigest()
    remote = Remote("100k", "ml-100k", zip_path.as_uri(), len(data), digest)
    return remote, zip_path


def test_pinned_table_is_complete() -> None:
    assert set(REMOTES) == {"100k", "1m", "20m", "25m", "latest-small"}
    for variant, remote in REMOTES.items():
        assert remote.url == f"https://files.grouplens.org/datasets/movielens/ml-{variant}.zip"
        assert len(remote.sha256) == 64 and int(remote.sha256, 16) >= 0
        assert remote.size > 0


def test_download_via_file_url_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote, _ = _local_remote(tmp_path)
    monkeypatch.setitem(REMOTES, "100k", remote)
    cache = tmp_path / "cache"
    ml = movielens("100k", cache_dir=cache, progress=False)
    assert ml.path == cache / "ml-100k"
    pd.testing.assert_frame_equal(ml.ratings, synthetic_movielens("100k", **SIZE).ratings)
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]  # zip and temp files gone

    def no_network(url: str) -> None:
        raise AssertionError(f"the cache should have been used, not {url}")

    monkeypatch.setattr(ml_module, "_urlopen", no_network)
    again = movielens("100k", cache_dir=cache, progress=False)
    pd.testing.assert_frame_equal(again.ratings, ml.ratings)


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWERREC_CACHE", str(tmp_path / "env-cache"))
    assert cache_root() == tmp_path / "env-cache"
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_checksum_mismatch_is_refused_and_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, _ = _local_remote(tmp_path, sha256="0" * 64)
    monkeypatch.setitem(REMOTES, "100k", remote)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as info:
        movielens("100k", cache_dir=cache, progress=False)
    err = info.value
    assert err.expected == "0" * 64
    assert err.actual == hashlib.sha256(Path(remote.url[len("file://") :]).read_bytes()).hexdigest()
    assert err.expected in str(err) and err.actual in str(err) and remote.url in str(err)
    assert not Path(err.path).exists()
    assert list(cache.iterdir()) == []  # no zip, no partial file, no folder


def test_size_mismatch_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "blob.bin"
    source.write_bytes(b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(ChecksumError, match="expected size in bytes 4, got 3"):
        download_file(source.as_uri(), tmp_path / "out.bin", sha256=sha, size=4, progress=False)
    assert not (tmp_path / "out.bin").exists()
    out = download_file(source.as_uri(), tmp_path / "out.bin", sha256=sha, size=3, progress=False)
    assert out.read_bytes() == b"abc"


def test_failed_download_says_where_to_put_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = (tmp_path / "nowhere" / "ml-100k.zip").as_uri()
    monkeypatch.setitem(REMOTES, "100k", Remote("100k", "ml-100k", missing, 1, "0" * 64))
    cache = tmp_path / "cache"
    with pytest.raises(MovieLensNotFoundError) as info:
        movielens("100k", cache_dir=cache, progress=False)
    message = str(info.value)
    assert f"not found in {cache / 'ml-100k'} and download failed (" in message
    assert f"Download {missing} yourself" in message
    assert "data_dir=<folder containing u.data>" in message
    with pytest.raises(MovieLensNotFoundError, match=r"download failed \(download=False\)"):
        movielens("100k", cache_dir=cache, download=False)
    assert isinstance(info.value, FileNotFoundError)


def _zip_with(tmp_path: Path, info: zipfile.ZipInfo, payload: bytes = b"x") -> Path:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", b"1\t1\t1\t1\n")
        zf.writestr(info, payload)
    return path


@pytest.mark.parametrize(
    ("member", "symlink", "pattern"),
    [
        ("ml-100k/../../evil.txt", False, r"'ml-100k/\.\./\.\./evil\.txt' has a '\.\.' component"),
        ("/abs/evil.txt", False, r"'/abs/evil\.txt' has an absolute path"),
        ("ml-100k/link", True, r"'ml-100k/link' is a symbolic link"),
    ],
)
def test_unsafe_zip_members_are_refused(
    tmp_path: Path, member: str, symlink: bool, pattern: str
) -> None:
    info = zipfile.ZipInfo(member)
    if symlink:
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zip_path = _zip_with(tmp_path, info, b"/etc/passwd" if symlink else b"x")
    dest = tmp_path / "dest"
    with pytest.raises(DataFormatError, match=pattern):
        safe_extract(zip_path, dest, "ml-100k")
    assert not (dest / "ml-100k").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.iterdir()) == []


def test_safe_extract_renames_into_place(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path / "src", "1m", **SIZE)
    zip_path = _zip_folder(folder, tmp_path / "ml-1m.zip")
    target = safe_extract(zip_path, tmp_path / "dest", "ml-1m")
    assert target == tmp_path / "dest" / "ml-1m"
    assert sorted(p.name for p in target.iterdir()) == ["movies.dat", "ratings.dat", "users.dat"]
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["ml-1m"]
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="not a valid zip"):
        safe_extract(tmp_path / "junk.zip", tmp_path / "dest", "ml-x")
