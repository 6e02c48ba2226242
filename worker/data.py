"""Training data with no downloads: bytes of Python's own standard library, or a user's file.

The default corpus is the `.py` sources of the running interpreter's standard library, read in
sorted path order, so it is the same on every machine with the same Python. Tokens are bytes
(0..255); a model with a smaller vocabulary sees them modulo its vocabulary size. A user's file is
read as text bytes, or as a token file: `.npy` (any integer array) or `.bin` (uint16, the nanoGPT
convention). The last `heldout_fraction` of the tokens is held out for evaluation.
"""

from __future__ import annotations

import functools
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DEFAULT_MAX_BYTES = 4 * 2**20  # 4 MiB: several times what a default validation job reads


@functools.lru_cache(maxsize=4)
def stdlib_bytes(max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Bytes of the standard library's `.py` files, sorted by path, up to `max_bytes` (read
    once per process; the array is read-only)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        chunks.append(data)
        total += len(data)
        if total >= max_bytes:
            break
    if not chunks:
        raise RuntimeError(f"no Python sources found under {root}")
    tokens = np.frombuffer(b"".join(chunks)[:max_bytes], dtype=np.uint8).astype(np.int64)
    tokens.setflags(write=False)
    return tokens


def load_tokens(dataset: str, max_tokens: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Tokens (int64) of 'stdlib' or of a file: `.npy`, `.bin` (uint16) or text (bytes)."""
    if dataset == "stdlib":
        return stdlib_bytes(max_tokens)
    path = Path(dataset)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {dataset!r} is neither 'stdlib' nor a readable file")
    if path.suffix == ".npy":
        tokens = np.load(path, mmap_mode="r").reshape(-1)
    elif path.suffix == ".bin":
        tokens = np.memmap(path, dtype=np.uint16, mode="r")
    else:
        tokens = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    return np.asarray(tokens[:max_tokens], dtype=np.int64)


@dataclass(frozen=True)
class Corpus:
    """A token stream split into a training and a held-out part."""

    train: np.ndarray  # (N_train,) int64
    heldout: np.ndarray  # (N_heldout,) int64

    def batch(
        self,
        split: str,
        batch_size: int,
        seq_len: int,
        vocab_size: int,
        generator: np.random.Generator,
    ) -> tuple[Tensor, Tensor]:
        """Random windows: inputs (B, S) and next-token targets (B, S), tokens mod vocab."""
        tokens = self.train if split == "train" else self.heldout
        if len(tokens) < seq_len + 2:
            raise ValueError(f"{split} split has {len(tokens)} tokens, fewer than S + 2")
        starts = generator.integers(0, len(tokens) - seq_len - 1, size=batch_size)
        windows_BS1 = np.stack([tokens[s : s + seq_len + 1] for s in starts]) % vocab_size
        windows = torch.from_numpy(windows_BS1)
        return windows[:, :-1], windows[:, 1:]


def load_corpus(
    dataset: str = "stdlib", heldout_fraction: float = 0.1, max_tokens: int = DEFAULT_MAX_BYTES
) -> Corpus:
    """The corpus of `dataset`, its last `heldout_fraction` held out."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction ({heldout_fraction}) must be in (0, 1)")
    tokens = load_tokens(dataset, max_tokens)
    split = int(len(tokens) * (1 - heldout_fraction))
    return Corpus(train=tokens[:split], heldout=tokens[split:])
