"""CLIP on a tiny random checkpoint built with transformers (test-only), compared with it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
pytest.importorskip("PIL")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from harrierdb.embed.clip import ClipEmbedding, ImagePreprocessing  # noqa: E402
from harrierdb.errors import ParamError  # noqa: E402

VOCAB = ["<|startoftext|>", "<|endoftext|>", "a", "photo", "of", "the", "cat", "dog", "red", "car", "[UNK]"]
# Old CLIP configs say eos_token_id=2 and mean "the largest id is end-of-text": put it last.
LEGACY_VOCAB = ["<|startoftext|>", *VOCAB[2:], "<|endoftext|>"]
TEXTS = ["a photo of the cat", "a red car", "dog", "the the the dog of a red cat photo"]


def word_tokenizer(vocab: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[(t, vocab.index(t)) for t in ("<|startoftext|>", "<|endoftext|>")])
    return tok


def tiny_clip(root: Path, eos_token_id: int, hidden_act: str = "quick_gelu", vocab: list[str] = VOCAB,
              seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": len(VOCAB), "hidden_size": 16, "intermediate_size": 24,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 16,
                     "hidden_act": hidden_act, "eos_token_id": eos_token_id, "bos_token_id": 0, "pad_token_id": 1},
        vision_config={"hidden_size": 12, "intermediate_size": 20, "num_hidden_layers": 2,
                       "num_attention_heads": 3, "image_size": 32, "patch_size": 8, "hidden_act": hidden_act},
        projection_dim=10)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():  # make LayerNorms and biases non-trivial
        for name, param in model.named_parameters():
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.2)
    model.save_pretrained(root, safe_serialization=True)
    word_tokenizer(vocab).save(str(root / "tokenizer.json"))
    return model


def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((40, 50), (64, 33), (32, 32))]


def reference_text(model, texts: list[str], vocab: list[str]) -> np.ndarray:
    tok = word_tokenizer(vocab)
    out = []
    for text in texts:
        ids = torch.tensor([tok.encode(text).ids])
        with torch.no_grad():
            feats = model.get_text_features(input_ids=ids)
        feats = getattr(feats, "pooler_output", feats)[0].numpy()
        out.append(feats / np.linalg.norm(feats))
    return np.array(out)


def reference_images(model, pixels: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        feats = model.get_image_features(pixel_values=torch.from_numpy(pixels))
    feats = getattr(feats, "pooler_output", feats).numpy()
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


@pytest.mark.parametrize("eos_token_id, hidden_act", [(1, "quick_gelu"), (2, "gelu")],
                         ids=["eos-id", "legacy-argmax-gelu"])
def test_numpy_clip_matches_transformers(tmp_path, eos_token_id, hidden_act):
    vocab = VOCAB if eos_token_id == 1 else LEGACY_VOCAB
    model = tiny_clip(tmp_path, eos_token_id, hidden_act, vocab)
    clip = ClipEmbedding(tmp_path, batch_size=3)
    assert clip.dim == 10 and clip.identity.normalized and clip.identity.version == "float32"
    got = clip.encode_queries(TEXTS)
    assert got.shape == (4, 10) and got.dtype == np.float32
    want = reference_text(model, TEXTS, vocab)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(clip.encode_documents(TEXTS), got, atol=1e-6)

    pics = images()
    pixels = np.stack([clip.preprocess(im) for im in pics])
    np.testing.assert_allclose(clip.encode_images(pics), reference_images(model, pixels), atol=1e-4)


def test_preprocessing_matches_clip_image_processor(tmp_path):
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    processor = processor_cls(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    ours = ImagePreprocessing(size=32, crop=32)
    for im in images():
        want = np.asarray(processor(images=im, return_tensors="np")["pixel_values"][0])
        np.testing.assert_allclose(ours(im), want, atol=1e-5)
    path = tmp_path / "pic.png"
    images()[0].save(path)
    np.testing.assert_allclose(ours(path), ours(images()[0]), atol=1e-6)


def test_images_from_paths_and_batches(tmp_path):
    tiny_clip(tmp_path / "m", eos_token_id=1)
    clip = ClipEmbedding(tmp_path / "m", batch_size=2)
    paths = []
    for i, im in enumerate(images()):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    from_paths = clip.encode_images(paths)
    np.testing.assert_allclose(from_paths, clip.encode_images(images()), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(from_paths, axis=1), 1, atol=1e-5)
    assert clip.encode_images([]).shape == (0, 10)
    assert clip.encode_queries([]).shape == (0, 10)
    with pytest.raises(ParamError, match="list of image paths"):
        clip.encode_images(paths[0])
    with pytest.raises(ParamError, match="cannot read image"):
        clip.encode_images([tmp_path / "missing.png"])
    with pytest.raises(ParamError, match="PIL image"):
        clip.encode_images([np.zeros((4, 4, 3))])


def test_onnx_exports_give_the_same_vectors(tmp_path):
    model = tiny_clip(tmp_path / "st", eos_token_id=1)
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    word_tokenizer(VOCAB).save(str(onnx_dir / "tokenizer.json"))

    class Text(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            out = self.m.get_text_features(input_ids=input_ids)
            return getattr(out, "pooler_output", out)

    class Vision(Text):
        def forward(self, pixel_values):
            out = self.m.get_image_features(pixel_values=pixel_values)
            return getattr(out, "pooler_output", out)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Text(model).eval(), (torch.tensor([[0, 2, 3, 1], [0, 5, 1, 1]]),),
                          str(onnx_dir / "text_model.onnx"), input_names=["input_ids"],
                          output_names=["text_embeds"], dynamic_axes={"input_ids": {0: "b", 1: "s"}},
                          dynamo=False)
        torch.onnx.export(Vision(model).eval(), (torch.zeros(2, 3, 32, 32),), str(onnx_dir / "vision_model.onnx"),
                          input_names=["pixel_values"], output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "b"}}, dynamo=False)
    onnx_clip, numpy_clip = ClipEmbedding(onnx_dir), ClipEmbedding(tmp_path / "st")
    assert onnx_clip.identity.version == "onnx" and onnx_clip.dim == 10
    np.testing.assert_allclose(onnx_clip.encode_queries(TEXTS), numpy_clip.encode_queries(TEXTS), atol=1e-4)
    np.testing.assert_allclose(onnx_clip.encode_images(images()), numpy_clip.encode_images(images()), atol=1e-4)


def test_bad_directories(tmp_path):
    with pytest.raises(ParamError, match="not a directory"):
        ClipEmbedding(tmp_path / "nope")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ParamError, match="Pickled checkpoints"):
        ClipEmbedding(tmp_path)
