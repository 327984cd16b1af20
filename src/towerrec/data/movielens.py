"""MovieLens datasets: download with pinned checksums, safe extraction, a cache, strict parsing.

```python
ml = movielens("100k")                      # downloads once into ~/.cache/towerrec
ml = movielens("1m", data_dir="~/data")     # or reads files you already have
ml.ratings, ml.items, ml.users, ml.joined()
```
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import http.client
import io
import math
import os
import re
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from towerrec.errors import ChecksumError, DataFormatError, TowerrecError

__all__ = [
    "REMOTES",
    "VARIANTS",
    "MovieLens",
    "MovieLensNotFoundError",
    "Remote",
    "cache_root",
    "download_file",
    "download_movielens",
    "movielens",
    "safe_extract",
]

BASE_URL = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class Remote:
    """Where one MovieLens variant is published: URL, folder inside the zip, pinned size and hashes."""

    variant: str
    folder: str
    url: str
    size: int
    sha256: str
    md5: str | None = None


def _remote(variant: str, size: int, sha256: str, md5: str | None = None) -> Remote:
    return Remote(variant, f"ml-{variant}", f"{BASE_URL}ml-{variant}.zip", size, sha256, md5)


# Sizes and SHA-256 as pinned by tensorflow_datasets (url_checksums/movielens.txt); MD5 as
# published by GroupLens next to each zip (<name>.zip.md5) and pinned by torchtext and others.
# fmt: off
REMOTES: dict[str, Remote] = {
    "100k": _remote("100k", 4_924_029,
                    "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                    "0e33842e24a9c977be4e0107933c0723"),
    "1m": _remote("1m", 5_917_549,
                  "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                  "c4d9eecfca2ab87c1945afe126590906"),
    "20m": _remote("20m", 198_702_078,
                   "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
                   "cd245b17a1ae2cc31bb14903e1204af3"),
    "25m": _remote("25m", 261_978_986,
                   "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
                   "6b51fb2759a8657d3bfcbfc42b592ada"),
    "latest-small": _remote("latest-small", 978_202,
                            "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
}
# fmt: on

VARIANTS: tuple[str, ...] = tuple(REMOTES)

# The file whose presence marks a folder as holding a variant, and the files it must have.
_MARKER = {"100k": "u.data", "1m": "ratings.dat"}
_REQUIRED = {
    "100k": ("u.data", "u.item", "u.user"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
}

# The 19 genres of ml-100k, in u.genre order (used only when u.genre is absent).
# fmt: off
GENRES_100K: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
# fmt: on


class MovieLensNotFoundError(TowerrecError, FileNotFoundError):
    """The MovieLens files are not on disk and could not be downloaded; the message says where
    to put them."""


# --------------------------------------------------------------------------------------------
# The dataset object


@dataclass(repr=False)
class MovieLens:
    """One MovieLens release, parsed.

    - `ratings`: `user_id` int64, `item_id` int64, `rating` float32, `timestamp` int64 (seconds),
      in file order.
    - `items`: `item_id` int64, `title` str, `genres` str (pipe-joined, e.g. "Action|Comedy"),
      plus `release_date`, `video_release_date`, `imdb_url` (100k) or `imdb_id`, `tmdb_id`
      (CSV releases with links.csv).
    - `users`: `user_id`, `age`, `gender`, `occupation`, `zip_code` (100k: occupation name;
      1m: age group and occupation code as given), or None where the release has no users file.
    """

    variant: str
    path: Path | None
    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None

    @property
    def movies(self) -> pd.DataFrame:
        """The `items` table (MovieLens calls its items movies)."""
        return self.items

    def joined(self) -> pd.DataFrame:
        """Ratings (in order) with each item's `title` and `genres` and, where present, the
        user columns."""
        out = self.ratings.merge(
            self.items[["item_id", "title", "genres"]],
            on="item_id",
            how="left",
            validate="many_to_one",
        )
        if self.users is not None:
            out = out.merge(self.users, on="user_id", how="left", validate="many_to_one")
        return out

    def __repr__(self) -> str:
        users = "None" if self.users is None else f"{len(self.users)} rows"
        return (
            f"MovieLens(variant={self.variant!r}, path={str(self.path)!r}, "
            f"ratings={len(self.ratings)} rows, items={len(self.items)} rows, users={users})"
        )


def movielens(
    variant: str,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
) -> MovieLens:
    """Load a MovieLens release: "100k", "1m", "20m", "25m" or "latest-small".

    With `data_dir`, read the extracted files from that folder (the `ml-<variant>` folder itself
    or its parent) and never download. Otherwise look in `<cache>/ml-<variant>`, where `<cache>`
    is `cache_dir`, else `$TOWERREC_CACHE`, else `~/.cache/towerrec`; if it is missing and
    `download` is true, fetch the official zip over HTTPS, verify its pinned SHA-256, and
    extract it there. Malformed files raise `DataFormatError` naming the file and line.
    """
    variant = _check_variant(variant)
    folder = _resolve_folder(variant, data_dir, cache_dir, download, progress)
    required = _REQUIRED.get(variant, ("ratings.csv", "movies.csv"))
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        raise MovieLensNotFoundError(
            f"MovieLens {variant} in {folder} is incomplete: {', '.join(missing)} missing (it "
            f"needs {', '.join(required)}). Unzip {REMOTES[variant].url} there again."
        )
    return _READERS[variant](folder, variant)


def _check_variant(variant: object) -> str:
    name = variant.lower().removeprefix("ml-") if isinstance(variant, str) else variant
    if name not in REMOTES:
        raise ValueError(
            f"The 'variant' parameter of movielens must be one of "
            f"{', '.join(repr(v) for v in VARIANTS)}. Got {variant!r} instead."
        )
    return str(name)


def _marker(variant: str) -> str:
    return _MARKER.get(variant, "ratings.csv")


def _resolve_folder(
    variant: str,
    data_dir: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None,
    download: bool,
    progress: bool,
) -> Path:
    remote, marker = REMOTES[variant], _marker(variant)
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        for candidate in (base, base / remote.folder):
            if (candidate / marker).is_file():
                return candidate
        raise MovieLensNotFoundError(
            f"MovieLens {variant} not found in data_dir={str(base)!r}: neither {marker} nor "
            f"{remote.folder}/{marker} exists there. Pass the folder containing {marker} (or "
            f"its parent), or leave data_dir unset to download {remote.url} into the cache."
        )
    folder = cache_root(cache_dir) / remote.folder
    if (folder / marker).is_file():
        return folder
    if not download:
        reason = "download=False"
    else:
        try:
            return download_movielens(variant, cache_dir=cache_dir, progress=progress)
        except (OSError, http.client.HTTPException) as exc:  # no network, refused, cut, ...
            reason = f"{type(exc).__name__}: {exc}"
    raise MovieLensNotFoundError(
        f"MovieLens {variant} not found in {folder} and download failed ({reason}). Download "
        f"{remote.url} yourself and unzip it there, or pass data_dir=<folder containing {marker}>."
    )


# --------------------------------------------------------------------------------------------
# Download, verification, extraction


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: `cache_dir`, else `$TOWERREC_CACHE`, else `~/.cache/towerrec`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("TOWERREC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "towerrec"


def _urlopen(url: str) -> Any:
    """Open `url` for reading (a seam tests may replace)."""
    request = urllib.request.Request(url, headers={"User-Agent": "towerrec"})
    return urllib.request.urlopen(request, timeout=60)


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str,
    size: int | None = None,
    md5: str | None = None,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest` through a temporary file, verify it, then rename it into place.

    A size or hash different from the pinned values raises `ChecksumError` (with `expected`,
    `actual` and `path` attributes) after deleting the downloaded bytes. Network failures raise
    `OSError` (`urllib.error.URLError`). Any URL scheme urllib opens works, `file://` included.
    """
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h256 = hashlib.sha256()
    hmd5 = hashlib.md5(usedforsecurity=False) if md5 else None
    received = 0
    try:
        with os.fdopen(fd, "wb") as out, _urlopen(url) as response:
            length = response.headers.get("Content-Length") if response.headers else None
            total = int(length) if length and length.isdigit() else size
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
                leave=False,
            ) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    h256.update(chunk)
                    if hmd5 is not None:
                        hmd5.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        checks = [("sha256", sha256.lower(), h256.hexdigest())]
        if size is not None:
            checks.insert(0, ("size in bytes", str(size), str(received)))
        if md5 and hmd5 is not None:
            checks.append(("md5", md5.lower(), hmd5.hexdigest()))
        for what, expected, actual in checks:
            if expected != actual:
                tmp.unlink(missing_ok=True)
                err = ChecksumError(
                    f"Checksum mismatch for {url}: expected {what} {expected}, got {actual}. "
                    f"The bad download ({tmp}) was deleted. Retry; if it persists the file "
                    f"changed upstream or the connection is intercepted."
                )
                err.expected, err.actual, err.path = expected, actual, tmp  # type: ignore[attr-defined]
                raise err
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _check_member(info: zipfile.ZipInfo, zip_path: Path) -> None:
    name = info.filename
    parts = re.split(r"[/\\]", name)
    mode = info.external_attr >> 16
    problem = None
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        problem = "has an absolute path"
    elif ".." in parts:
        problem = "has a '..' component"
    elif stat.S_ISLNK(mode):
        problem = "is a symbolic link"
    elif "\x00" in name:
        problem = "has a NUL byte in its name"
    if problem:
        raise DataFormatError(
            f"Refusing to extract {zip_path}: member {name!r} {problem}. The archive is unsafe; "
            f"delete it and download the official file again."
        )


def safe_extract(
    zip_path: str | os.PathLike[str], dest_dir: str | os.PathLike[str], folder: str
) -> Path:
    """Extract `zip_path` into `dest_dir/folder` atomically and return that folder.

    Every member is checked first: absolute paths, `..` components and symbolic links raise
    `DataFormatError` naming the member, and nothing is written. The zip is extracted into a
    temporary folder next to the target and renamed into place. If the zip holds `folder/` at
    its top level, that folder becomes the target; otherwise the zip's whole content does.
    """
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    target = dest_dir / folder
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise DataFormatError(f"{zip_path} is not a valid zip file ({exc}).") from exc
    with zf:
        for info in zf.infolist():
            _check_member(info, zip_path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".extract", dir=dest_dir))
        try:
            try:
                zf.extractall(tmp)
            except zipfile.BadZipFile as exc:
                raise DataFormatError(f"{zip_path} is corrupted ({exc}).") from exc
            source = tmp / folder if (tmp / folder).is_dir() else tmp
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()  # an empty placeholder folder
            if not target.exists():
                os.replace(source, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_movielens(
    variant: str, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> Path:
    """Download, verify and extract one MovieLens release into the cache; return its folder.

    Uses `REMOTES[variant]` (URL, pinned size, SHA-256, MD5). The zip is deleted after
    extraction; the extracted `ml-<variant>` folder is the cache.
    """
    variant = _check_variant(variant)
    remote = REMOTES[variant]
    root = cache_root(cache_dir)
    zip_path = root / f"{remote.folder}.zip"
    download_file(
        remote.url,
        zip_path,
        sha256=remote.sha256,
        size=remote.size,
        md5=remote.md5,
        progress=progress,
    )
    try:
        return safe_extract(zip_path, root, remote.folder)
    finally:
        zip_path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Strict parsing
#
# Field kinds: "int", "float" (finite), "str", "flag" (0 or 1), "optint" (int or empty).
# Small tables (items, users, links) are parsed line by line with exact checks; ratings, which
# are all numeric and can hold 25 million rows, go through pandas' C parser and, on failure,
# a line-by-line pass finds the first bad line for the message.


@dataclass(frozen=True)
class _Spec:
    file: str
    fields: tuple[tuple[str, str], ...]
    sep: str
    encoding: str
    header: tuple[str, ...] | None = None
    quoted: bool = False
    free: int | None = None  # index of a free-text field that may contain the separator

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.fields]

    def expectation(self) -> str:
        sep = {"\t": "tab", ",": "comma", "|": "'|'", "::": "'::'"}.get(self.sep, repr(self.sep))
        return f"{len(self.fields)} {sep}-separated fields ({', '.join(self.names)})"


_RATING_FIELDS = (("user_id", "int"), ("item_id", "int"), ("rating", "float"), ("timestamp", "int"))
_U_DATA = _Spec("u.data", _RATING_FIELDS, "\t", "latin-1")
_U_USER = _Spec(
    "u.user",
    (
        ("user_id", "int"),
        ("age", "int"),
        ("gender", "str"),
        ("occupation", "str"),
        ("zip_code", "str"),
    ),
    "|",
    "latin-1",
)
_U_GENRE = _Spec("u.genre", (("genre", "str"), ("index", "int")), "|", "latin-1")
_RATINGS_DAT = _Spec("ratings.dat", _RATING_FIELDS, "::", "latin-1")
_MOVIES_DAT = _Spec(
    "movies.dat", (("item_id", "int"), ("title", "str"), ("genres", "str")), "::", "latin-1", free=1
)
_USERS_DAT = _Spec(
    "users.dat",
    (
        ("user_id", "int"),
        ("gender", "str"),
        ("age", "int"),
        ("occupation", "int"),
        ("zip_code", "str"),
    ),
    "::",
    "latin-1",
)
_RATINGS_CSV = _Spec(
    "ratings.csv",
    _RATING_FIELDS,
    ",",
    "utf-8",
    header=("userId", "movieId", "rating", "timestamp"),
    quoted=True,
)
_MOVIES_CSV = _Spec(
    "movies.csv",
    (("item_id", "int"), ("title", "str"), ("genres", "str")),
    ",",
    "utf-8",
    header=("movieId", "title", "genres"),
    quoted=True,
)
_LINKS_CSV = _Spec(
    "links.csv",
    (("item_id", "int"), ("imdb_id", "str"), ("tmdb_id", "optint")),
    ",",
    "utf-8",
    header=("movieId", "imdbId", "tmdbId"),
    quoted=True,
)

_INT = re.compile(r"-?[0-9]+")
_INT64_MAX = 2**63 - 1


def _fail(path: Path, line: int, problem: str) -> DataFormatError:
    return DataFormatError(
        f"{path} line {line}: {problem}. Fix or remove that line, or download the dataset again."
    )


def _show(fields: list[str], sep: str) -> str:
    text = sep.join(fields)
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _records(path: Path, spec: _Spec) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, fields) for each non-blank line (record) of the file."""

    def lines() -> Iterator[str]:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    text = raw.decode(spec.encoding)
                except UnicodeDecodeError as exc:
                    raise _fail(
                        path,
                        number,
                        f"bytes that are not valid {spec.encoding} text "
                        f"({exc.reason} at byte {exc.start} of the line)",
                    ) from None
                yield text.removeprefix("\ufeff") if number == 1 else text

    if spec.quoted:
        reader = csv.reader(lines(), delimiter=spec.sep, quotechar='"', strict=True)
        while True:
            start = reader.line_num + 1  # a record spanning lines is named by its first line
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _fail(path, start, f"malformed CSV ({exc}; is a quote left open?)") from None
            if row:
                yield start, row
    n = len(spec.fields)
    for number, text in enumerate(lines(), 1):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        if spec.free is None:
            yield number, text.split(spec.sep)
            continue
        head = text.split(spec.sep, spec.free)
        tail = head.pop().rsplit(spec.sep, n - spec.free - 1) if len(head) > spec.free else []
        yield number, head + tail


def _check_value(value: str, kind: str) -> str | None:
    if kind == "int" or (kind == "optint" and value != ""):
        if not _INT.fullmatch(value) or abs(int(value)) > _INT64_MAX:
            return "an integer"
    elif kind == "float":
        try:
            if not math.isfinite(float(value)):
                return "a finite number"
        except ValueError:
            return "a number"
    elif kind == "flag" and value not in ("0", "1"):
        return "0 or 1"
    return None


def _check_row(path: Path, spec: _Spec, line: int, row: list[str]) -> None:
    if len(row) != len(spec.fields):
        raise _fail(
            path,
            line,
            f"expected {spec.expectation()}, found {len(row)} field(s): {_show(row, spec.sep)}",
        )
    for (name, kind), value in zip(spec.fields, row, strict=True):
        wanted = _check_value(value, kind)
        if wanted:
            raise _fail(path, line, f"field '{name}' must be {wanted}, got {value!r}")


def _check_header(path: Path, spec: _Spec, line: int, row: list[str]) -> None:
    if spec.header is not None and tuple(row) != spec.header:
        raise _fail(
            path,
            line,
            f"expected the header {','.join(spec.header)!r}, found {_show(row, spec.sep)}",
        )


def _parse_small(path: Path, spec: _Spec) -> tuple[pd.DataFrame, list[int]]:
    """Parse a small table exactly, line by line; return it and each row's line number."""
    columns: list[list[str]] = [[] for _ in spec.fields]
    numbers: list[int] = []
    with contextlib.closing(_records(path, spec)) as records:
        if spec.header is not None:
            first = next(records, None)
            if first is None:
                raise _fail(
                    path, 1, f"the file is empty; expected the header {','.join(spec.header)!r}"
                )
            _check_header(path, spec, *first)
        for line, row in records:
            _check_row(path, spec, line, row)
            numbers.append(line)
            for column, value in zip(columns, row, strict=True):
                column.append(value)
    data: dict[str, object] = {}
    for (name, kind), values in zip(spec.fields, columns, strict=True):
        if kind in ("int", "flag"):
            data[name] = np.array(values, dtype=np.int64) if values else np.zeros(0, np.int64)
        elif kind == "optint":
            data[name] = pd.array([int(v) if v else None for v in values], dtype="Int64")
        elif kind == "float":
            data[name] = np.array(values, dtype=np.float64)
        else:
            data[name] = pd.array(values, dtype="str")
    return pd.DataFrame(data), numbers


# A well-formed line of an all-numeric file, matched on raw bytes so that locating a bad line
# in millions of good ones stays fast; lines that do not match get the exact checks.
_NUMBER = {
    "int": rb"-?[0-9]{1,18}",
    "float": rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?",
}


def _locate(path: Path, spec: _Spec, cause: BaseException | str) -> DataFormatError:
    """Find the first bad line of an all-numeric file that failed a fast parse; return the
    error to raise."""
    good = re.compile(
        re.escape(spec.sep.encode()).join(_NUMBER[kind] for _, kind in spec.fields) + rb"\r?\n?"
    )
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            is_data = number > 1 or spec.header is None
            if is_data and (good.fullmatch(raw) or not raw.strip()):
                continue
            try:
                text = raw.decode(spec.encoding).removeprefix("\ufeff").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise _fail(
                    path,
                    number,
                    f"bytes that are not valid {spec.encoding} text "
                    f"({exc.reason} at byte {exc.start} of the line)",
                ) from None
            if spec.quoted:
                try:
                    row = next(csv.reader([text], delimiter=spec.sep, strict=True), [])
                except csv.Error as exc:
                    raise _fail(path, number, f"malformed CSV ({exc})") from None
            else:
                row = text.split(spec.sep)
            if number == 1 and spec.header is not None:
                _check_header(path, spec, number, row)
            else:
                _check_row(path, spec, number, row)
    return DataFormatError(f"{path}: could not be read as {spec.expectation()} per line ({cause}).")


def _parse_ratings(path: Path, spec: _Spec) -> pd.DataFrame:
    """Parse a (possibly huge) all-numeric ratings file with pandas' C parser."""
    with contextlib.closing(_records(path, spec)) as records:
        first = next(records, None)
    if first is None:
        raise _fail(path, 1, f"the file is empty; expected lines of {spec.expectation()}")
    _check_header(path, spec, *first)
    dtypes = {
        i: ("float64" if kind == "float" else "int64") for i, (_, kind) in enumerate(spec.fields)
    }
    source: Path | io.BytesIO = path
    sep = spec.sep
    try:
        if len(sep) > 1:  # '::' -> a one-byte separator absent from the file, for the C parser
            raw = path.read_bytes()
            sep = next(c for c in "\t\x1f\x1e\x1d" if c.encode() not in raw)
            source = io.BytesIO(raw.replace(spec.sep.encode(), sep.encode()))
        frame = pd.read_csv(
            source,
            sep=sep,
            header=None,
            skiprows=1 if spec.header else 0,
            dtype=dtypes,
            engine="c",
            encoding=spec.encoding,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL if spec.quoted else csv.QUOTE_NONE,
        )
    except (ValueError, OverflowError, StopIteration, pd.errors.ParserError) as exc:
        raise _locate(path, spec, exc) from exc
    if frame.shape[1] != len(spec.fields):
        raise _locate(path, spec, f"found {frame.shape[1]} columns")
    frame.columns = spec.names
    rating = frame["rating"].to_numpy()
    if not np.isfinite(rating).all():
        raise _locate(path, spec, "non-finite rating")
    frame["rating"] = rating.astype(np.float32)
    return frame


def _line_of(path: Path, spec: _Spec, position: int) -> int:
    """The line number of data record `position` (0-based) of a one-record-per-line file."""
    seen = -1 if spec.header is not None else 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if raw.strip():
                if seen == position:
                    return number
                seen += 1
    return position + 1


def _check_unique(frame: pd.DataFrame, column: str, path: Path, lines: list[int]) -> None:
    duplicated = frame[column].duplicated().to_numpy()
    if duplicated.any():
        pos = int(np.flatnonzero(duplicated)[0])
        raise _fail(
            path,
            lines[pos],
            f"duplicate {column} {frame[column].iloc[pos]}; each {column} must appear once",
        )


def _check_known(
    ratings: pd.DataFrame, column: str, table: pd.DataFrame, path: Path, spec: _Spec, other: Path
) -> None:
    unknown = ~ratings[column].isin(table[column]).to_numpy()
    if unknown.any():
        pos = int(np.flatnonzero(unknown)[0])
        raise _fail(
            path,
            _line_of(path, spec, pos),
            f"{column} {ratings[column].iloc[pos]} does not appear in {other}",
        )


def _finish(
    variant: str,
    folder: Path,
    ratings: pd.DataFrame,
    rspec: _Spec,
    items: pd.DataFrame,
    ipath: Path,
    users: pd.DataFrame | None = None,
    upath: Path | None = None,
) -> MovieLens:
    rpath = folder / rspec.file
    _check_known(ratings, "item_id", items, rpath, rspec, ipath)
    if users is not None and upath is not None:
        _check_known(ratings, "user_id", users, rpath, rspec, upath)
    return MovieLens(variant=variant, path=folder, ratings=ratings, items=items, users=users)


def _read_genres_100k(folder: Path) -> tuple[str, ...]:
    path = folder / "u.genre"
    if not path.is_file():
        return GENRES_100K
    table, lines = _parse_small(path, _U_GENRE)
    for position, (index, line) in enumerate(zip(table["index"], lines, strict=True)):
        if index != position:
            raise _fail(path, line, f"expected genre index {position}, got {index}")
    return tuple(table["genre"])


def _read_100k(folder: Path, variant: str) -> MovieLens:
    genres = _read_genres_100k(folder)
    item_spec = _Spec(
        "u.item",
        (
            ("item_id", "int"),
            ("title", "str"),
            ("release_date", "str"),
            ("video_release_date", "str"),
            ("imdb_url", "str"),
            *((f"genre:{g}", "flag") for g in genres),
        ),
        "|",
        "latin-1",
    )
    items, lines = _parse_small(folder / "u.item", item_spec)
    _check_unique(items, "item_id", folder / "u.item", lines)
    flags = items[[f"genre:{g}" for g in genres]].to_numpy(dtype=bool)
    names = np.array(genres, dtype=object)
    joined = ["|".join(names[row]) for row in flags]
    items = items[["item_id", "title"]].assign(
        genres=pd.array(joined, dtype="str"),
        release_date=items["release_date"],
        video_release_date=items["video_release_date"],
        imdb_url=items["imdb_url"],
    )
    users, user_lines = _parse_small(folder / "u.user", _U_USER)
    _check_unique(users, "user_id", folder / "u.user", user_lines)
    ratings = _parse_ratings(folder / "u.data", _U_DATA)
    return _finish(
        variant, folder, ratings, _U_DATA, items, folder / "u.item", users, folder / "u.user"
    )


def _read_1m(folder: Path, variant: str) -> MovieLens:
    items, lines = _parse_small(folder / "movies.dat", _MOVIES_DAT)
    _check_unique(items, "item_id", folder / "movies.dat", lines)
    users, user_lines = _parse_small(folder / "users.dat", _USERS_DAT)
    _check_unique(users, "user_id", folder / "users.dat", user_lines)
    users = users[["user_id", "age", "gender", "occupation", "zip_code"]]
    ratings = _parse_ratings(folder / "ratings.dat", _RATINGS_DAT)
    return _finish(
        variant,
        folder,
        ratings,
        _RATINGS_DAT,
        items,
        folder / "movies.dat",
        users,
        folder / "users.dat",
    )


def _read_csv_release(folder: Path, variant: str) -> MovieLens:
    items, lines = _parse_small(folder / "movies.csv", _MOVIES_CSV)
    _check_unique(items, "item_id", folder / "movies.csv", lines)
    links_path = folder / "links.csv"
    if links_path.is_file():
        links, link_lines = _parse_small(links_path, _LINKS_CSV)
        _check_unique(links, "item_id", links_path, link_lines)
        items = items.merge(links, on="item_id", how="left", validate="one_to_one")
    ratings = _parse_ratings(folder / "ratings.csv", _RATINGS_CSV)
    return _finish(variant, folder, ratings, _RATINGS_CSV, items, folder / "movies.csv")


_READERS = {
    "100k": _read_100k,
    "1m": _read_1m,
    "20m": _read_csv_release,
    "25m": _read_csv_release,
    "latest-small": _read_csv_release,
}
