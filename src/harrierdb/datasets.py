"""Small public data sets for examples and tests, fetched from Debian's package archive.

``load_movielens()`` returns the MovieLens ratings (about 100,000 ratings of 9,000
movies by 671 users, the "ml-latest-small" sample) that ship in Debian's
``r-cran-dslabs`` package. The first call runs ``apt-get download r-cran-dslabs``
into the cache directory (``$HARRIER_DATA``, else ``~/.cache/harrierdb/data``),
unpacks the ``.deb`` and reads the R lazy-load database ``data/Rdata.rdb`` with the
``rdata`` package; the result is cached there as ``movielens.npz``, so later calls
need neither apt nor ``rdata``.

Without apt, put ``r-cran-dslabs_*.deb`` (from any Debian mirror) in the cache
directory, or install the package (then ``/usr/lib/R/site-library/dslabs`` is used).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.errors import ParamError

DEB_PACKAGE = "r-cran-dslabs"
#: Where an installed ``r-cran-dslabs`` keeps its data.
SYSTEM_DSLABS = Path("/usr/lib/R/site-library/dslabs")
#: The data directory inside the unpacked ``.deb``.
DEB_DSLABS = Path("usr/lib/R/site-library/dslabs")
CACHE_FILE = "movielens-v2.npz"  # bump the name when Ratings changes


@dataclasses.dataclass(frozen=True)
class Ratings:
    """Ratings, one per row of the parallel arrays ``users``, ``items``, ``ratings`` and
    ``timestamps``; and the items, one per row of ``item_ids``, ``titles`` and ``genres``.

    Ids are MovieLens's (int64), ratings 0.5-5 stars (float32), timestamps Unix seconds;
    ``titles[j]`` and ``genres[j]`` (``|``-separated) describe item ``item_ids[j]``.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    item_ids: np.ndarray
    titles: np.ndarray
    genres: np.ndarray

    def __len__(self) -> int:
        return len(self.ratings)

    def item_titles(self) -> dict[int, str]:
        """``{item id: title}``."""
        return dict(zip(self.item_ids.tolist(), self.titles.tolist()))


def data_dir() -> Path:
    """The cache directory: ``$HARRIER_DATA``, else ``~/.cache/harrierdb/data``."""
    env = os.environ.get("HARRIER_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harrierdb" / "data"


def load_movielens(cache_dir: str | os.PathLike[str] | None = None) -> Ratings:
    """The MovieLens ratings from Debian's ``r-cran-dslabs`` (fetched on first use).

    Raises :class:`ParamError` saying how to get the data when it cannot be fetched.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else data_dir()
    cached = root / CACHE_FILE
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as z:
            return Ratings(**{f.name: z[f.name] for f in dataclasses.fields(Ratings)})
    frame = read_lazyload(_dslabs_dir(root) / "data" / "Rdata", "movielens")
    ratings = _ratings_from_frame(frame)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, suffix=".npz", delete=False) as tmp:
        np.savez_compressed(tmp, **dataclasses.asdict(ratings))
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, cached)
    return ratings


def read_lazyload(base: Path, name: str) -> Any:
    """Object ``name`` from an R lazy-load database ``base.rdx`` + ``base.rdb``.

    The ``.rdx`` index is a gzipped R serialization of ``list(variables=list(name=
    c(offset, length)), ...)``; each ``.rdb`` record is a 4-byte big-endian length
    followed by a zlib stream (or a type byte ``Z``/``2``/``0`` for xz/bzip2/none).
    """
    try:
        import rdata
    except ImportError as exc:
        raise ParamError("reading R data needs the rdata package: pip install rdata") from exc

    index = _convert(rdata, gzip.decompress(base.with_suffix(".rdx").read_bytes()))
    variables = {str(k): v for k, v in index["variables"].items()}
    if name not in variables:
        raise ParamError(f"{str(base)!r} has no object {name!r}; it has {sorted(variables)}")
    offset, length = (int(x) for x in variables[name])
    with open(base.with_suffix(".rdb"), "rb") as f:
        f.seek(offset)
        record = f.read(length)
    return _convert(rdata, _decompress_record(record))


def _decompress_record(record: bytes) -> bytes:
    kind, body = record[4:5], record[5:]
    if kind == b"Z":
        return lzma.decompress(body)
    if kind == b"2":
        import bz2
        return bz2.decompress(body)
    if kind == b"0":
        return body
    return zlib.decompress(record[4:])


def _convert(rdata: Any, serialized: bytes) -> Any:
    import warnings

    with warnings.catch_warnings():  # a bare serialization has no file magic: "assumed RDS"
        warnings.simplefilter("ignore", UserWarning)
        return rdata.conversion.convert(rdata.parser.parse_data(serialized))


def _ratings_from_frame(frame: Any) -> Ratings:
    def column(name: str, dtype: Any) -> np.ndarray:
        if name not in frame.columns:
            raise ParamError(f"the movielens table lacks column {name!r}; it has {list(frame.columns)}")
        series = frame[name]
        if dtype is str:
            return np.asarray(series.astype(str).to_numpy(), dtype=str)
        return series.to_numpy(dtype=dtype)

    items = column("movieId", np.int64)
    item_ids, first = np.unique(items, return_index=True)
    return Ratings(users=column("userId", np.int64), items=items,
                   ratings=column("rating", np.float32), timestamps=column("timestamp", np.int64),
                   item_ids=item_ids, titles=column("title", str)[first], genres=column("genres", str)[first])


def _dslabs_dir(root: Path) -> Path:
    """The ``dslabs`` R package directory: installed, already unpacked, or fetched now."""
    if (SYSTEM_DSLABS / "data" / "Rdata.rdb").is_file():
        return SYSTEM_DSLABS
    unpacked = root / "dslabs-deb" / DEB_DSLABS
    if (unpacked / "data" / "Rdata.rdb").is_file():
        return unpacked
    debs = sorted(root.glob(f"{DEB_PACKAGE}_*.deb")) if root.is_dir() else []
    deb = debs[-1] if debs else _apt_download(root)
    _extract_deb(deb, root / "dslabs-deb")
    if not (unpacked / "data" / "Rdata.rdb").is_file():
        raise ParamError(f"{str(deb)!r} does not contain {DEB_DSLABS}/data/Rdata.rdb")
    return unpacked


def _how_to_fetch(root: Path) -> str:
    return (f"fetch it by hand with `cd {root} && apt-get download {DEB_PACKAGE}`, or download "
            f"{DEB_PACKAGE}_*.deb from a Debian mirror into {root} (set HARRIER_DATA to use "
            f"another directory), or `apt-get install {DEB_PACKAGE}`")


def _apt_download(root: Path) -> Path:
    apt = shutil.which("apt-get")
    if apt is None:
        raise ParamError(f"the MovieLens data comes from the Debian package {DEB_PACKAGE!r}, but "
                         f"apt-get is not available here; {_how_to_fetch(root)}")
    root.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([apt, "download", DEB_PACKAGE], cwd=root, capture_output=True,
                              text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ParamError(f"`apt-get download {DEB_PACKAGE}` failed ({exc}); {_how_to_fetch(root)}") from exc
    debs = sorted(root.glob(f"{DEB_PACKAGE}_*.deb"))
    if done.returncode != 0 or not debs:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no .deb written"]
        raise ParamError(f"`apt-get download {DEB_PACKAGE}` failed: {detail[0]} (run `apt-get update` "
                         f"first if the package is unknown); {_how_to_fetch(root)}")
    return debs[-1]


def _extract_deb(deb: Path, dest: Path) -> None:
    """Unpack a ``.deb`` with ``dpkg-deb -x``, or in Python where dpkg is missing."""
    dest.mkdir(parents=True, exist_ok=True)
    dpkg = shutil.which("dpkg-deb")
    if dpkg is not None:
        done = subprocess.run([dpkg, "-x", str(deb), str(dest)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise ParamError(f"dpkg-deb -x {str(deb)!r} failed: {done.stderr.strip()}")
        return
    data = _ar_member(deb.read_bytes(), "data.tar")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse unsafe paths
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)  # noqa: S202


def _ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of an ``ar`` archive (a ``.deb``) whose name starts with ``prefix``."""
    if not archive.startswith(b"!<arch>\n"):
        raise ParamError("not a .deb (ar) archive")
    pos = 8
    while pos + 60 <= len(archive):
        header = archive[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if name.startswith(prefix):
            if name.endswith(".zst"):
                raise ParamError("this .deb is zstd-compressed; install dpkg to unpack it")
            return archive[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    raise ParamError(f"the .deb has no {prefix}* member")
