"""Drift: batch summaries, the two-sample indicators, real and null cases, the PNG, ``harrier drift``."""

import json

import numpy as np
import pytest

from harrierdb import MilvusClient
from harrierdb.errors import ParamError
from harrierdb.quality.drift import (
    Thresholds,
    batch_summary,
    centroid_shift,
    compare,
    mmd_test,
    plot,
    psi,
    split_labels,
)


def test_batch_summary_is_json_and_deterministic(rng):
    x = rng.standard_normal((200, 32)).astype(np.float32) + 1.0
    s = batch_summary(x)
    assert json.loads(json.dumps(s)) == s
    assert s["count"] == 200 and s["dim"] == 32
    assert np.allclose(s["mean"], x.mean(axis=0), atol=1e-6)
    norms = np.linalg.norm(x, axis=1)
    assert s["norm"]["quantiles"]["0.5"] == pytest.approx(np.median(norms), rel=1e-6)
    assert sum(s["norm"]["histogram"]["counts"]) == 200
    assert s["sketch"]["seed"] == 0 and len(s["sketch"]["quantiles"]) == s["sketch"]["projections"] == 16
    again = batch_summary(x[::-1])["sketch"]  # row order does not matter
    assert np.allclose(again["quantiles"], s["sketch"]["quantiles"]) and np.allclose(again["mean"], s["sketch"]["mean"])
    assert batch_summary(x, seed=5)["sketch"]["mean"] != s["sketch"]["mean"]
    for bad in (np.zeros(3), np.zeros((0, 4)), np.full((2, 2), np.nan), "text"):
        with pytest.raises(ParamError):
            batch_summary(bad)


def test_vectorised_mmd_equals_the_textbook_formula(rng):
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((9, 5)) + 0.5
    mmd2, p, sigma, null = mmd_test(x, y, split_labels(12, 9, 50, rng))
    pooled = np.vstack([x, y])
    d2 = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma ** 2))
    kxx, kyy, kxy = k[:12, :12], k[12:, 12:], k[:12, 12:]
    want = ((kxx.sum() - np.trace(kxx)) / (12 * 11) + (kyy.sum() - np.trace(kyy)) / (9 * 8)
            - 2 * kxy.mean())
    assert mmd2 == pytest.approx(want, rel=1e-9)
    assert 0 < p <= 1 and len(null) == 50
    assert sigma ** 2 == pytest.approx(np.median(d2[np.triu_indices(21, 1)]) / 2)


def test_indicators_on_synthetic_shifts(rng):
    base = rng.standard_normal((300, 16))
    same = compare(base[:150], base[150:], permutations=200)
    assert not same.is_drift and same.mmd_p_value > 0.01
    shifted = compare(base, rng.standard_normal((300, 16)) + np.r_[1.5, np.zeros(15)], permutations=200)
    assert shifted.is_drift and shifted.alarms["mmd"] and shifted.mmd_p_value < 0.01
    assert centroid_shift(np.ones((3, 2)), -np.ones((3, 2))) == pytest.approx(2.0)
    scaled = compare(base, base * 3, permutations=50)
    assert scaled.psi_norm > 1 and scaled.alarms["psi_norm"]
    off = compare(base, base * 3, permutations=50, thresholds=Thresholds(None, None, None))
    assert not off.is_drift  # every alarm switched off
    assert psi(base[:, 0], base[:, 0]) == 0.0
    report = shifted.to_dict()
    assert json.loads(json.dumps(report)) == report and report["is_drift"] is True
    with pytest.raises(ParamError, match="dim"):
        compare(base, base[:, :8])
    with pytest.raises(ParamError):
        compare(base, base, permutations=0)
    with pytest.raises(ParamError):
        Thresholds(psi=-1)


def test_noun_glosses_against_verb_glosses_is_drift(gloss_vectors):
    report = compare(gloss_vectors["n"], gloss_vectors["v"], permutations=500)
    print(report.summary())
    assert report.mmd_p_value < 0.01 and report.is_drift


def test_random_halves_rarely_raise_a_false_alarm(gloss_vectors):
    nouns = gloss_vectors["n"]
    alarms = 0
    for trial in range(100):
        order = np.random.default_rng(trial).permutation(len(nouns))
        half = len(nouns) // 2
        alarms += compare(nouns[order[:half]], nouns[order[half:]], permutations=200, seed=trial).is_drift
    print(f"false alarms: {alarms}/100")
    assert alarms <= 5


def test_plot_writes_a_readable_png(gloss_vectors, tmp_path, assert_real_png):
    report = compare(gloss_vectors["n"], gloss_vectors["v"], permutations=100)
    out = plot(report, tmp_path / "drift.png")
    assert_real_png(out)


def test_harrier_drift(tmp_path, run_cli, capsys, assert_real_png):
    rng = np.random.default_rng(0)
    db = str(tmp_path / "db")
    client = MilvusClient(db)
    client.create_collection("docs", dimension=8)
    vectors = np.vstack([rng.standard_normal((200, 8)), rng.standard_normal((200, 8)) + 1.0])
    client.insert("docs", [{"id": i, "vector": v, "batch": i // 200} for i, v in enumerate(vectors)])
    client.close()
    png, js = tmp_path / "d.png", tmp_path / "d.json"
    assert run_cli(["drift", db, "docs", "--field", "vector", "--split-by-insert-order", "0.5",
                    "--png", str(png), "--json", str(js), "--permutations", "100"]) == 0
    assert "DRIFT" in capsys.readouterr().out
    assert json.loads(js.read_text())["is_drift"] is True
    assert_real_png(png)
    assert run_cli(["drift", db, "docs", "--field", "vector", "--reference-filter", "id < 100",
                    "--current-filter", "id >= 100 and id < 200", "--fail-on-drift"]) == 0
    assert "no drift" in capsys.readouterr().out
    assert run_cli(["drift", db, "docs", "--field", "vector", "--reference-filter", "batch == 0",
                    "--current-filter", "batch == 1", "--fail-on-drift"]) == 1
    assert run_cli(["drift", db, "docs", "--field", "vector"]) == 2
    assert run_cli(["drift", db, "docs", "--field", "id", "--split-by-insert-order", "0.5"]) == 2
    assert run_cli(["drift", db, "docs", "--field", "vector", "--split-by-insert-order", "1.5"]) == 2
