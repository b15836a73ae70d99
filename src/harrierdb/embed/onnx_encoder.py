"""A transformer encoder run by ONNX Runtime: token ids in, last hidden state out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from harrierdb.errors import ParamError

#: More intra-op threads than this rarely speeds up a small encoder and starves other work.
MAX_DEFAULT_THREADS = 8

#: The inputs a BERT-style encoder may take; only those the model lists are fed.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def default_threads() -> int:
    """CPU cores this process may use (affinity-aware), capped at :data:`MAX_DEFAULT_THREADS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_THREADS))


class OnnxEncoder:
    """Calls an ONNX model with the inputs it declares and returns its first output."""

    def __init__(self, path: Path, providers: Sequence[str], num_threads: int | None = None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or default_threads()
        # Idle threads spinning for work steal the CPU from everything else on a busy machine
        # (measured: 2 threads took twice as long as 1 while other jobs ran).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = set(ort.get_available_providers())
        unknown = [p for p in providers if p not in available]
        if unknown:
            raise ParamError(f"ONNX Runtime providers {unknown} are not available here; "
                             f"available: {sorted(available)}")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own unrelated exception types
            raise ParamError(f"cannot load ONNX model {str(path)!r}: {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        if "input_ids" not in self.input_names:
            raise ParamError(f"ONNX model {str(path)!r} has inputs {self.input_names}, "
                             "not input_ids: it is not a text encoder")
        extra = [n for n in self.input_names if n not in MODEL_INPUTS]
        if extra:
            raise ParamError(f"ONNX model {str(path)!r} needs inputs {extra} besides "
                             f"{list(MODEL_INPUTS)}; HarrierDB cannot feed them")
        output = self.session.get_outputs()[0]
        self.output_name = output.name
        last = output.shape[-1] if output.shape else None
        self.dim: int | None = last if isinstance(last, int) else None

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None) -> np.ndarray:
        """``(batch, seq, hidden)`` float32 token embeddings (or ``(batch, dim)`` if pooled)."""
        given = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": token_type_ids if token_type_ids is not None else np.zeros_like(input_ids)}
        feed = {name: given[name] for name in self.input_names if name in given}
        (hidden,) = self.session.run([self.output_name], feed)
        return np.asarray(hidden, dtype=np.float32)
