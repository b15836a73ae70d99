"""``ClipEmbedding``: CLIP image and text vectors in one space, without PyTorch.

A local checkpoint directory holds ``tokenizer.json`` and either

* ``model.safetensors`` + ``config.json`` in HuggingFace's ``CLIPModel`` layout
  (``text_model.*``, ``vision_model.*``, ``text_projection``, ``visual_projection``),
  run by the NumPy transformers below; or
* ONNX exports ``text_model.onnx`` (``input_ids`` -> ``text_embeds``) and
  ``vision_model.onnx`` (``pixel_values`` -> ``image_embeds``), run by ONNX Runtime.

Both towers are pre-LayerNorm transformers. Text: token + position embeddings, causal
self-attention, final LayerNorm, the hidden state at the end-of-text token, projected.
Images: resized (shortest edge, bicubic), center-cropped, scaled to [0, 1] and
normalised with CLIP's mean/std (``preprocessor_config.json`` overrides these), cut into
patches, a class token prepended, pre-LayerNorm, encoder, post-LayerNorm of the class
token, projected. Every output vector is L2-normalised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.embed.base import EmbeddingFunction, ModelIdentity, check_texts, progress
from harrierdb.embed.bert_numpy import gelu, layer_norm, softmax
from harrierdb.embed.dense import l2_normalize
from harrierdb.embed.tokenize import BatchTokenizer
from harrierdb.embed.weights import refuse_pickle, sha256_file
from harrierdb.errors import ParamError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: ``CLIPTextConfig`` / ``CLIPVisionConfig`` defaults, for fields a config.json leaves out.
TEXT_DEFAULTS = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                 "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                 "layer_norm_eps": 1e-5, "eos_token_id": 49407}
VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                   "num_attention_heads": 12, "image_size": 224, "patch_size": 32,
                   "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
    """How an image becomes ``pixel_values``, as ``CLIPImageProcessor`` does it."""

    size: int = 224        # shortest edge after resizing
    crop: int = 224        # square center crop
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @classmethod
    def from_file(cls, path: Path, image_size: int) -> ImagePreprocessing:
        if not path.is_file():
            return cls(size=image_size, crop=image_size)
        data = json.loads(path.read_text(encoding="utf-8"))

        def edge(value: Any, key: str) -> int:
            return int(value[key] if isinstance(value, dict) else value)

        size = edge(data.get("size", image_size), "shortest_edge")
        crop = edge(data.get("crop_size", image_size), "height")
        return cls(size=size, crop=crop, mean=tuple(data.get("image_mean", CLIP_MEAN)),
                   std=tuple(data.get("image_std", CLIP_STD)))

    def __call__(self, image: Any) -> np.ndarray:
        """``(3, crop, crop)`` float32 from a PIL image or an image file path."""
        from PIL import Image

        if isinstance(image, (str, os.PathLike)):
            try:
                with Image.open(image) as f:
                    image = f.convert("RGB")
            except OSError as exc:
                raise ParamError(f"cannot read image {str(image)!r}: {exc}") from exc
        elif isinstance(image, Image.Image):
            image = image.convert("RGB")
        else:
            raise ParamError(f"expected an image path or a PIL image, got {type(image).__name__}")
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.size, int(self.size * long / short)
        image = image.resize((new_short, new_long) if w <= h else (new_long, new_short), Image.Resampling.BICUBIC)
        w, h = image.size
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        pixels = np.asarray(image, dtype=np.float32)[top:top + self.crop, left:left + self.crop] / 255.0
        pixels = (pixels - np.float32(self.mean)) / np.float32(self.std)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)


class ClipEmbedding(EmbeddingFunction):
    """CLIP from a local checkpoint: ``encode_images`` for pictures, ``encode_queries`` /
    ``encode_documents`` for text (the same encoder), all normalised, all in one space."""

    def __init__(self, model_dir: str | os.PathLike[str], batch_size: int = 16,
                 providers: Sequence[str] = ("CPUExecutionProvider",), num_threads: int | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ParamError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = batch_size
        root = Path(model_dir).expanduser()
        refuse_pickle(root)
        if not root.is_dir():
            raise ParamError(f"model_dir {str(root)!r} is not a directory")
        if not (root / "tokenizer.json").is_file():
            raise ParamError(f"model_dir {str(root)!r} has no tokenizer.json")
        text_onnx, vision_onnx = root / "text_model.onnx", root / "vision_model.onnx"
        if text_onnx.is_file() and vision_onnx.is_file():
            self._text: Any = _OnnxTower(text_onnx, "input_ids", "text_embeds", providers, num_threads)
            self._vision: Any = _OnnxTower(vision_onnx, "pixel_values", "image_embeds", providers, num_threads)
            sha = hashlib.sha256((sha256_file(text_onnx) + sha256_file(vision_onnx)).encode()).hexdigest()
            image_size, max_length, version = self._vision.image_size(), 77, "onnx"
        elif (root / "model.safetensors").is_file() and (root / "config.json").is_file():
            config = _clip_config(root / "config.json")
            weights = _load_safetensors(root / "model.safetensors")
            self._text = NumpyClipText(weights, config["text"])
            self._vision = NumpyClipVision(weights, config["vision"])
            sha = sha256_file(root / "model.safetensors")
            image_size = int(config["vision"]["image_size"])
            max_length, version = int(config["text"]["max_position_embeddings"]), "float32"
        else:
            raise ParamError(f"model_dir {str(root)!r} has neither model.safetensors + config.json nor "
                             "text_model.onnx + vision_model.onnx. Pickled checkpoints (.bin, .pt) are "
                             "not loaded: convert them to safetensors or ONNX first")
        self._tokenizer = BatchTokenizer(root / "tokenizer.json", max_length)
        self.preprocess = ImagePreprocessing.from_file(root / "preprocessor_config.json", image_size)
        if self.preprocess.crop > self.preprocess.size:
            raise ParamError(f"crop_size {self.preprocess.crop} exceeds the resized edge {self.preprocess.size}")
        dim = self._text(np.zeros((1, 2), dtype=np.int64)).shape[1]
        self._identity = ModelIdentity(name=root.name, version=version, dim=int(dim), normalized=True,
                                       weights_sha256=sha)

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def encode_documents(self, items: Sequence[str]) -> np.ndarray:
        return self._encode_texts(check_texts(items), "embedding documents")

    def encode_queries(self, items: Sequence[str]) -> np.ndarray:
        return self._encode_texts(check_texts(items), "embedding queries")

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """``(len(images), dim)`` float32 for image paths or PIL images."""
        if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence):
            raise ParamError("encode_images expects a list of image paths or PIL images; wrap one in a list")
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        starts = list(range(0, len(images), self.batch_size))
        for s in progress(starts, "embedding images"):
            pixels = np.stack([self.preprocess(im) for im in images[s:s + self.batch_size]])
            out[s:s + len(pixels)] = self._vision(pixels)
        return l2_normalize(out)

    def __repr__(self) -> str:
        return f"ClipEmbedding(model={self._identity.name!r}, dim={self.dim})"

    def _encode_texts(self, texts: list[str], desc: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode(texts) if texts else []
        starts = list(range(0, len(texts), self.batch_size))
        for s in progress(starts, desc):
            inputs = self._tokenizer.pad(encodings[s:s + self.batch_size])
            out[s:s + len(inputs["input_ids"])] = self._text(inputs["input_ids"], inputs["attention_mask"])
        return l2_normalize(out)


# -- the NumPy transformers ------------------------------------------------------------------

@dataclasses.dataclass
class _Layer:
    ln1: tuple[np.ndarray, np.ndarray]
    w_qkv: np.ndarray  # (hidden, 3 * hidden)
    b_qkv: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]
    w_up: np.ndarray
    b_up: np.ndarray
    w_down: np.ndarray
    b_down: np.ndarray


class _Encoder:
    """CLIP's pre-LayerNorm encoder: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``, per layer."""

    def __init__(self, w: dict[str, np.ndarray], prefix: str, config: dict[str, Any]):
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.act = _activation(config["hidden_act"])
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"{prefix}encoder.layers.{i}."
            self.layers.append(_Layer(
                ln1=(_get(w, p + "layer_norm1.weight"), _get(w, p + "layer_norm1.bias")),
                w_qkv=np.concatenate([_get(w, p + f"self_attn.{n}_proj.weight").T for n in "qkv"], axis=1),
                b_qkv=np.concatenate([_get(w, p + f"self_attn.{n}_proj.bias") for n in "qkv"]),
                w_out=_get(w, p + "self_attn.out_proj.weight").T, b_out=_get(w, p + "self_attn.out_proj.bias"),
                ln2=(_get(w, p + "layer_norm2.weight"), _get(w, p + "layer_norm2.bias")),
                w_up=_get(w, p + "mlp.fc1.weight").T, b_up=_get(w, p + "mlp.fc1.bias"),
                w_down=_get(w, p + "mlp.fc2.weight").T, b_down=_get(w, p + "mlp.fc2.bias")))

    def __call__(self, x: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        for layer in self.layers:
            x = x + self._attention(layer_norm(x, *layer.ln1, self.eps), layer, bias)
            h = layer_norm(x, *layer.ln2, self.eps)
            x = x + self.act(h @ layer.w_up + layer.b_up) @ layer.w_down + layer.b_down
        return x

    def _attention(self, x: np.ndarray, layer: _Layer, bias: np.ndarray | None) -> np.ndarray:
        batch, seq, hidden = x.shape
        head_dim = hidden // self.heads
        qkv = (x @ layer.w_qkv + layer.b_qkv).reshape(batch, seq, 3, self.heads, head_dim)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) * np.float32(head_dim ** -0.5)
        if bias is not None:
            scores = scores + bias
        context = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        return context @ layer.w_out + layer.b_out


class NumpyClipText:
    """``(input_ids, attention_mask)`` -> projected text features ``(batch, projection_dim)``.

    Causal attention means no token sees a later one, so right padding cannot change the
    end-of-text state that is pooled; ``attention_mask`` is accepted and not needed.
    """

    def __init__(self, w: dict[str, np.ndarray], config: dict[str, Any]):
        self.token = _get(w, "text_model.embeddings.token_embedding.weight")
        self.position = _get(w, "text_model.embeddings.position_embedding.weight")
        self.encoder = _Encoder(w, "text_model.", config)
        self.final_ln = (_get(w, "text_model.final_layer_norm.weight"), _get(w, "text_model.final_layer_norm.bias"))
        self.projection = _get(w, "text_projection.weight").T
        self.eos_token_id = int(config["eos_token_id"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
        seq = input_ids.shape[1]
        if seq > len(self.position):
            raise ParamError(f"{seq} tokens exceed the text model's {len(self.position)} positions")
        x = self.token[input_ids] + self.position[:seq][None]
        causal = np.triu(np.full((seq, seq), np.finfo(np.float32).min, dtype=np.float32), k=1)
        x = layer_norm(self.encoder(x, causal[None, None]), *self.final_ln, self.encoder.eps)
        if self.eos_token_id == 2:  # configs from before transformers#24773: the largest id is EOS
            eos = input_ids.argmax(axis=1)
        else:
            eos = (input_ids == self.eos_token_id).argmax(axis=1)
        return x[np.arange(len(x)), eos] @ self.projection


class NumpyClipVision:
    """``pixel_values (batch, 3, size, size)`` -> projected image features."""

    def __init__(self, w: dict[str, np.ndarray], config: dict[str, Any]):
        p = "vision_model."
        self.patch = int(config["patch_size"])
        self.image_size = int(config["image_size"])
        conv = _get(w, p + "embeddings.patch_embedding.weight")   # (hidden, 3, patch, patch)
        self.patch_weight = conv.reshape(conv.shape[0], -1).T       # (3 * patch * patch, hidden)
        self.class_embedding = _get(w, p + "embeddings.class_embedding")
        self.position = _get(w, p + "embeddings.position_embedding.weight")
        self.pre_ln = (_get(w, p + "pre_layrnorm.weight"), _get(w, p + "pre_layrnorm.bias"))
        self.post_ln = (_get(w, p + "post_layernorm.weight"), _get(w, p + "post_layernorm.bias"))
        self.encoder = _Encoder(w, p, config)
        self.projection = _get(w, "visual_projection.weight").T

    def __call__(self, pixel_values: np.ndarray) -> np.ndarray:
        b, c, h, w = pixel_values.shape
        if h != self.image_size or w != self.image_size:
            raise ParamError(f"images must be {self.image_size}x{self.image_size}, got {h}x{w}")
        g, p = h // self.patch, self.patch
        patches = pixel_values.reshape(b, c, g, p, g, p).transpose(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * p * p)
        x = patches @ self.patch_weight
        x = np.concatenate([np.broadcast_to(self.class_embedding, (b, 1, x.shape[2])), x], axis=1)
        x = layer_norm(x + self.position[None], *self.pre_ln, self.encoder.eps)
        x = self.encoder(x)
        return layer_norm(x[:, 0], *self.post_ln, self.encoder.eps) @ self.projection


def quick_gelu(x: np.ndarray) -> np.ndarray:
    """OpenAI CLIP's activation: ``x * sigmoid(1.702 x)``."""
    return x / (np.float32(1.0) + np.exp(np.float32(-1.702) * x))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    c = np.float32(math.sqrt(2 / math.pi))
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(c * (x + np.float32(0.044715) * x ** 3)))


def _activation(name: str) -> Any:
    acts = {"quick_gelu": quick_gelu, "gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh}
    if name not in acts:
        raise ParamError(f"hidden_act {name!r} is not supported; one of {sorted(acts)}")
    return acts[name]


# -- files -----------------------------------------------------------------------------------

def _clip_config(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("model_type", "clip") != "clip":
        raise ParamError(f"{str(path)!r} describes a {data['model_type']!r} model, not CLIP")
    text = data.get("text_config") or data.get("text_config_dict") or {}
    vision = data.get("vision_config") or data.get("vision_config_dict") or {}
    return {"text": {**TEXT_DEFAULTS, **text}, "vision": {**VISION_DEFAULTS, **vision}}


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise ParamError(f"cannot read safetensors file {str(path)!r}: {exc}") from exc


def _get(w: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in w:
        raise ParamError(f"CLIP weights lack tensor {name!r}; is this a CLIPModel checkpoint?")
    return np.ascontiguousarray(w[name], dtype=np.float32)


class _OnnxTower:
    """One exported CLIP tower: its named input in, its ``*_embeds`` output (else the first) out."""

    def __init__(self, path: Path, input_name: str, output_name: str, providers: Sequence[str],
                 num_threads: int | None):
        import onnxruntime as ort

        from harrierdb.embed.onnx_encoder import default_threads

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or default_threads()
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
        except Exception as exc:
            raise ParamError(f"cannot load ONNX model {str(path)!r}: {exc}") from exc
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        if input_name not in self.inputs:
            raise ParamError(f"ONNX model {str(path)!r} has inputs {list(self.inputs)}, not {input_name!r}")
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = output_name if output_name in outputs else outputs[0]
        self.input_name = input_name

    def image_size(self) -> int:
        shape = self.inputs[self.input_name].shape
        return shape[-1] if isinstance(shape[-1], int) else 224

    def __call__(self, values: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
        feed = {self.input_name: values}
        if "attention_mask" in self.inputs:
            feed["attention_mask"] = attention_mask if attention_mask is not None else np.ones_like(values)
        (out,) = self.session.run([self.output], feed)
        if out.ndim != 2:
            raise ParamError(f"ONNX output {self.output!r} has shape {out.shape}; expected (batch, dim) embeddings")
        return np.asarray(out, dtype=np.float32)
