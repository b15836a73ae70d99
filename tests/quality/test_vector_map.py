"""2-D maps: PCA, colour handling, the PNG, and ``harrier map``."""

import importlib.util

import numpy as np
import pytest

from harrierdb import MilvusClient
from harrierdb.errors import ParamError
from harrierdb.quality.projection import is_categorical, pca, plot_map, principal_axes, project


def test_pca_finds_the_main_axes(rng):
    x = rng.standard_normal((500, 6)) * np.array([10.0, 3.0, 0.1, 0.1, 0.1, 0.1])
    p = pca(x)
    assert p.coords.shape == (500, 2) and p.method == "pca"
    mean, axes, shares = principal_axes(x)
    assert abs(axes[0, 0]) > 0.99 and abs(axes[1, 1]) > 0.99
    assert shares[0] > shares[1] > 0 and sum(shares) < 1
    assert np.allclose(p.coords.mean(axis=0), 0, atol=1e-9)
    assert p.coords[:, 0].var() == pytest.approx(x[:, 0].var(), rel=0.01)
    assert pca(np.ones((1, 4))).coords.shape == (1, 2)  # a single row still maps
    assert p.axis_labels()[0].startswith("PC 1 (")


def test_project_and_bad_input(rng):
    x = rng.standard_normal((50, 8))
    assert project(x, "pca").method == "pca"
    expected = "umap" if importlib.util.find_spec("umap") else "pca"
    assert project(x, "auto").method == expected
    if expected == "pca":
        with pytest.raises(ParamError, match="umap-learn"):
            project(x, "umap")
    for bad in (np.zeros(3), np.zeros((0, 3)), [[1.0, float("nan")]]):
        with pytest.raises(ParamError):
            pca(bad)
    with pytest.raises(ParamError):
        project(x, "tsne")


def test_categorical_or_scale():
    assert is_categorical(["en", "fr"]) and is_categorical([True, False])
    assert is_categorical([2001, 2002, 2003])
    assert not is_categorical(list(range(40))) and not is_categorical([0.5, 1.5])


@pytest.mark.parametrize("values", [None, "numbers", "labels", "many labels"])
def test_plot_map_writes_a_png(rng, tmp_path, values, assert_real_png):
    x = rng.standard_normal((300, 8))
    colours = {None: None, "numbers": list(rng.random(300)),
               "labels": [["a", "b", "c"][i % 3] for i in range(300)],
               "many labels": [f"t{i % 30}" for i in range(300)]}[values]
    out = plot_map(pca(x), colours, tmp_path / "map.png", title="test map", color_label="c")
    assert_real_png(out)
    with pytest.raises(ParamError):
        plot_map(pca(x), [1, 2], tmp_path / "bad.png")


def test_harrier_map(tmp_path, run_cli, capsys, assert_real_png):
    rng = np.random.default_rng(1)
    db = str(tmp_path / "db")
    client = MilvusClient(db)
    client.create_collection("docs", dimension=8)
    client.insert("docs", [{"id": i, "vector": rng.standard_normal(8) + (i % 3), "year": 2000 + i % 3,
                            "score": float(i)} for i in range(400)])
    client.close()
    for colour in ("year", "score"):
        png = tmp_path / f"{colour}.png"
        assert run_cli(["map", db, "docs", "--field", "vector", "--color", colour, "--png", str(png),
                        "--limit", "300", "--method", "pca"]) == 0
        assert "300 points" in capsys.readouterr().out
        assert_real_png(png)
    assert run_cli(["map", db, "docs", "--field", "vector", "--png", str(tmp_path / "x.png"),
                    "--filter", "year == 1999"]) == 2
    assert run_cli(["map", db, "nope", "--field", "vector", "--png", str(tmp_path / "x.png")]) == 2
