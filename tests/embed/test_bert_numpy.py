"""The NumPy BERT forward pass on a tiny random model (its agreement with the real
model is checked in test_dense.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiny_bert import random_bert_weights  # noqa: E402

from harrierdb.embed.bert_numpy import BertConfig, NumpyBert, erf, gelu
from harrierdb.errors import ParamError

CONFIG = BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=16, max_position_embeddings=16)


def tiny_weights(config: BertConfig = CONFIG, vocab: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    return random_bert_weights(config.hidden_size, config.intermediate_size, config.num_hidden_layers, vocab,
                               config.max_position_embeddings, seed=seed, scale=0.5)


def test_erf_and_gelu_are_accurate():
    x = np.linspace(-6, 6, 2001, dtype=np.float32)
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(erf(x) - exact).max() < 5e-7  # float32 rounding on top of 1.5e-7
    exact_gelu = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    assert np.abs(gelu(x) - exact_gelu).max() < 2e-6


def test_output_shape_and_dtype():
    bert = NumpyBert(tiny_weights(), CONFIG)
    ids = np.array([[1, 5, 7, 2]])
    out = bert(ids, np.ones_like(ids))
    assert out.shape == (1, 4, 8) and out.dtype == np.float32
    # Post-LayerNorm rows are roughly standardised before the affine part.
    assert np.isfinite(out).all()


def test_padding_does_not_change_real_tokens():
    bert = NumpyBert(tiny_weights(), CONFIG)
    ids = np.array([[1, 5, 7, 2]])
    alone = bert(ids, np.ones_like(ids))
    padded_ids = np.array([[1, 5, 7, 2, 0, 0, 0], [1, 9, 9, 9, 9, 9, 2]])
    mask = np.array([[1, 1, 1, 1, 0, 0, 0], [1] * 7])
    padded = bert(padded_ids, mask)
    np.testing.assert_allclose(padded[0, :4], alone[0], atol=1e-5)


def test_token_types_matter_and_default_to_zero():
    bert = NumpyBert(tiny_weights(), CONFIG)
    ids = np.array([[1, 5, 7, 2]])
    mask = np.ones_like(ids)
    np.testing.assert_array_equal(bert(ids, mask), bert(ids, mask, np.zeros_like(ids)))
    assert not np.allclose(bert(ids, mask), bert(ids, mask, np.ones_like(ids)))


def test_bert_prefix_in_names_is_accepted():
    w = {"bert." + k: v for k, v in tiny_weights().items()}
    ids = np.array([[1, 2]])
    np.testing.assert_array_equal(NumpyBert(w, CONFIG)(ids, np.ones_like(ids)),
                                  NumpyBert(tiny_weights(), CONFIG)(ids, np.ones_like(ids)))


def test_missing_tensor_and_too_long_input_are_param_errors():
    w = tiny_weights()
    del w["encoder.layer.1.output.dense.bias"]
    with pytest.raises(ParamError, match="output.dense.bias"):
        NumpyBert(w, CONFIG)
    ids = np.ones((1, 17), dtype=np.int64)
    with pytest.raises(ParamError, match="positions"):
        NumpyBert(tiny_weights(), CONFIG)(ids, ids)


def test_config_from_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 30}')
    assert BertConfig.from_file(path).hidden_size == 8
    path.write_text('{"model_type": "roberta"}')
    with pytest.raises(ParamError, match="roberta"):
        BertConfig.from_file(path)
