"""MovieLens from Debian's r-cran-dslabs: the reader on a fake package, then the real one."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from harrierdb import datasets
from harrierdb.datasets import Ratings, load_movielens, read_lazyload
from harrierdb.errors import ParamError

ROWS = {"movieId": [31, 1029, 31], "title": ["Dangerous Minds", "Dumbo", "Dangerous Minds"],
        "genres": ["Drama", "Animation|Children", "Drama"], "userId": [1, 1, 2],
        "rating": [2.5, 3.0, 4.5], "timestamp": [1260759144, 1260759179, 1260759182]}


def write_lazyload(base: Path) -> None:
    """An R lazy-load database ``base.rdb``/``base.rdx`` holding ``movielens``, as R writes it."""
    pd = pytest.importorskip("pandas")
    rdata = pytest.importorskip("rdata")
    frame = pd.DataFrame({
        "movieId": np.array(ROWS["movieId"], dtype=np.int32),
        "title": pd.array(ROWS["title"], dtype=pd.StringDtype("python")),
        "genres": pd.Categorical(ROWS["genres"]),
        "userId": np.array(ROWS["userId"], dtype=np.int32),
        "rating": ROWS["rating"],
        "timestamp": np.array(ROWS["timestamp"], dtype=np.int32)})
    base.parent.mkdir(parents=True, exist_ok=True)
    rdata.write_rds(base.with_suffix(".tmp"), frame, compression=None)
    serialized = base.with_suffix(".tmp").read_bytes()
    base.with_suffix(".tmp").unlink()
    record = struct.pack(">I", len(serialized)) + zlib.compress(serialized)
    other = b"\x00" * 11  # another object before ours: offsets must be honoured
    base.with_suffix(".rdb").write_bytes(other + record)
    index = {"variables": {"movielens": np.array([len(other), len(record)])},
             "references": {}, "compressed": np.array([True])}
    rdata.write_rds(base.with_suffix(".rdx"), index)


def write_deb(path: Path, files: dict[str, bytes]) -> None:
    """A minimal ``.deb``: an ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    def tar_xz(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo("./" + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    control = b"Package: r-cran-dslabs\nVersion: 0.0-test\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n"
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", tar_xz({"control": control})),
               ("data.tar.xz", tar_xz(files))]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(bytes(out))


@pytest.fixture
def no_system_dslabs(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "SYSTEM_DSLABS", tmp_path / "not-installed")


def check_fake_ratings(r: Ratings) -> None:
    np.testing.assert_array_equal(r.users, ROWS["userId"])
    np.testing.assert_array_equal(r.items, ROWS["movieId"])
    np.testing.assert_allclose(r.ratings, ROWS["rating"])
    assert r.ratings.dtype == np.float32 and r.users.dtype == np.int64
    assert r.item_ids.tolist() == [31, 1029]
    assert r.titles.tolist() == ["Dangerous Minds", "Dumbo"]
    assert r.genres.tolist() == ["Drama", "Animation|Children"]
    assert r.item_titles() == {31: "Dangerous Minds", 1029: "Dumbo"}
    assert len(r) == 3


def test_read_lazyload(tmp_path):
    write_lazyload(tmp_path / "Rdata")
    frame = read_lazyload(tmp_path / "Rdata", "movielens")
    assert list(frame["userId"]) == ROWS["userId"]
    with pytest.raises(ParamError, match="no object 'murders'"):
        read_lazyload(tmp_path / "Rdata", "murders")


@pytest.mark.parametrize("dpkg", [True, False], ids=["dpkg-deb", "python-ar"])
def test_load_from_a_deb_in_the_cache(tmp_path, monkeypatch, no_system_dslabs, dpkg):
    import shutil

    if dpkg and shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    write_lazyload(tmp_path / "src" / "Rdata")
    prefix = "usr/lib/R/site-library/dslabs/data/"
    (tmp_path / "cache").mkdir()
    write_deb(tmp_path / "cache" / "r-cran-dslabs_0.0-test_all.deb",
              {prefix + name: (tmp_path / "src" / name).read_bytes() for name in ("Rdata.rdb", "Rdata.rdx")})
    real_which = shutil.which
    monkeypatch.setattr(datasets.shutil, "which",
                        lambda cmd: None if cmd == "apt-get" or not dpkg else real_which(cmd))
    check_fake_ratings(load_movielens(tmp_path / "cache"))
    assert (tmp_path / "cache" / datasets.CACHE_FILE).is_file()

    # Later loads read the cache alone: no R reader needed.
    def fail(*args: object) -> None:
        raise AssertionError("the cached npz should have been used")
    monkeypatch.setattr(datasets, "read_lazyload", fail)
    check_fake_ratings(load_movielens(tmp_path / "cache"))


def test_cache_dir_comes_from_harrier_data(monkeypatch, tmp_path):
    monkeypatch.setenv("HARRIER_DATA", str(tmp_path / "d"))
    assert datasets.data_dir() == tmp_path / "d"
    monkeypatch.delenv("HARRIER_DATA")
    assert datasets.data_dir() == Path.home() / ".cache" / "harrierdb" / "data"


def test_without_apt_the_error_says_how_to_fetch(tmp_path, monkeypatch, no_system_dslabs):
    monkeypatch.setattr(datasets.shutil, "which", lambda cmd: None)
    with pytest.raises(ParamError, match="apt-get is not available") as info:
        load_movielens(tmp_path / "empty")
    assert "apt-get download r-cran-dslabs" in info.value.message
    assert "HARRIER_DATA" in info.value.message


def test_not_a_deb_is_a_param_error():
    with pytest.raises(ParamError, match="not a .deb"):
        datasets._ar_member(b"PK\x03\x04", "data.tar")


def test_real_movielens():
    """The real data (fetched with apt on first use; skipped where that is impossible)."""
    try:
        r = load_movielens()
    except ParamError as exc:
        pytest.skip(f"MovieLens unavailable: {exc.message}")
    assert len(r) == 100_004
    assert len(np.unique(r.users)) == 671 and len(np.unique(r.items)) == 9066
    assert r.ratings.min() == 0.5 and r.ratings.max() == 5.0
    assert r.item_titles()[1] == "Toy Story"
    assert len(r.users) == len(r.items) == len(r.ratings) == len(r.timestamps)
    assert len(r.item_ids) == len(r.titles) == len(r.genres) == 9066
    assert r.genres[np.searchsorted(r.item_ids, 1)] == "Adventure|Animation|Children|Comedy|Fantasy"
