"""ModelIdentity, input checks and the progress bar: NumPy only, no model needed."""

from __future__ import annotations

import pytest

from harrierdb.embed import base
from harrierdb.embed.base import ModelIdentity, check_texts, progress
from harrierdb.errors import ModelMismatchError, ParamError

IDENT = ModelIdentity(name="m", version="int8", dim=384, normalized=True, weights_sha256="ab" * 32)


def test_identity_round_trips_through_dict():
    d = IDENT.to_dict()
    assert d == {"name": "m", "version": "int8", "dim": 384, "normalized": True,
                 "weights_sha256": "ab" * 32, "metric": "COSINE"}
    assert ModelIdentity.from_dict(d) == IDENT
    assert hash(ModelIdentity.from_dict(d)) == hash(IDENT)


def test_identity_from_dict_defaults_metric_and_rejects_bad_keys():
    d = IDENT.to_dict()
    del d["metric"]
    assert ModelIdentity.from_dict(d).metric == "COSINE"
    with pytest.raises(ParamError, match="unknown keys"):
        ModelIdentity.from_dict({**IDENT.to_dict(), "extra": 1})
    with pytest.raises(ParamError, match="missing keys"):
        ModelIdentity.from_dict({"name": "m"})
    with pytest.raises(ParamError):
        ModelIdentity.from_dict("not a dict")  # type: ignore[arg-type]


@pytest.mark.parametrize("field, value", [("dim", 0), ("dim", True), ("metric", "HAMMING"),
                                          ("normalized", 1), ("name", "")])
def test_identity_validates_fields(field, value):
    with pytest.raises(ParamError):
        ModelIdentity(**{**IDENT.to_dict(), field: value})


def test_identity_is_frozen():
    with pytest.raises(AttributeError):
        IDENT.dim = 3  # type: ignore[misc]


def test_check_matches_names_the_differences():
    IDENT.check_matches(ModelIdentity.from_dict(IDENT.to_dict()))
    other = ModelIdentity(**{**IDENT.to_dict(), "weights_sha256": "cd" * 32})
    with pytest.raises(ModelMismatchError, match="weights_sha256"):
        IDENT.check_matches(other)


def test_check_texts():
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts(t for t in ["x"]) == ["x"]
    with pytest.raises(ParamError, match="wrap it in a list"):
        check_texts("a single string")
    with pytest.raises(ParamError, match="item 1"):
        check_texts(["ok", 3])
    with pytest.raises(ParamError):
        check_texts(None)


def test_progress_bar_only_on_a_tty_for_long_inputs(monkeypatch):
    batches = list(range(10))
    monkeypatch.setattr(base, "_stderr_is_tty", lambda: False)
    assert type(progress(batches, "x")).__name__ == "list_iterator"
    monkeypatch.setattr(base, "_stderr_is_tty", lambda: True)
    assert type(progress(batches[:2], "x")).__name__ == "list_iterator"
    pytest.importorskip("tqdm")
    assert list(progress(batches, "x")) == batches
