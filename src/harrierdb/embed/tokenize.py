"""A HuggingFace ``tokenizers`` tokenizer that yields padded NumPy batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from harrierdb.errors import ParamError


class BatchTokenizer:
    """Tokenizes a list of texts once, then pads any subset of them into model inputs.

    The file's own padding/truncation settings are replaced: we truncate at
    ``max_length`` and pad each batch only to its longest member.
    """

    def __init__(self, path: Path, max_length: int):
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise ParamError(f"cannot read tokenizer {str(path)!r}: {exc}") from exc
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_length)
        pad_id = self._tok.token_to_id("[PAD]")
        self.pad_id = 0 if pad_id is None else pad_id

    def encode(self, texts: list[str]) -> list[Encoding]:
        """One unpadded encoding per text (tokenized in parallel)."""
        return self._tok.encode_batch(texts, add_special_tokens=True)

    def pad(self, encodings: list[Encoding]) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids`` as int64 ``(n, longest)``."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
