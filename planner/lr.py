"""The LayerToken learning-rate schedule (Yao et al. 2022, section 3.2).

The paper proposes driving the LR by consumed tokens rather than steps, so that a random-LTD run
(which consumes fewer tokens per step early on) warms up and decays by the work it has done.
DeepSpeed never implemented it; Megatron-DeepSpeed drives it by its effective-token counter C as it
stood *before* the current step:

    C <= W          lr = peak * C / W                                (warmup)
    W < C < D       x = (C - W) / (D - W); lr = min_lr + k * (peak - min_lr)
                    k = 0.5 * (cos(pi * x) + 1)  (cosine)   or   k = 1 - x  (linear)
    C >= D          lr = min_lr
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class LRConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    peak_lr: float = Field(..., gt=0, le=10, description="Peak learning rate.")
    min_lr: float = Field(0.0, ge=0, le=10, description="Learning rate after decay.")
    warmup_tokens: int = Field(0, ge=0, le=10**16, description="Warmup budget W, in tokens.")
    decay_tokens: int = Field(..., ge=1, le=10**16, description="Decay ends at D tokens.")
    style: Literal["cosine", "linear"] = Field("cosine", description="Decay shape.")

    @model_validator(mode="after")
    def _order(self) -> LRConfig:
        if self.min_lr > self.peak_lr:
            raise ValueError(f"min_lr: {self.min_lr} must not exceed peak_lr ({self.peak_lr})")
        if self.decay_tokens <= self.warmup_tokens:
            raise ValueError(
                f"decay_tokens: {self.decay_tokens} must exceed "
                f"warmup_tokens ({self.warmup_tokens})"
            )
        return self


def learning_rate(consumed_tokens: np.ndarray | int, cfg: LRConfig) -> np.ndarray:
    """LR for a step that starts with `consumed_tokens` effective tokens already consumed."""
    C = np.asarray(consumed_tokens, dtype=np.float64)
    W, D = float(cfg.warmup_tokens), float(cfg.decay_tokens)
    x = np.clip((C - W) / (D - W), 0.0, 1.0)
    k = 0.5 * (np.cos(np.pi * x) + 1.0) if cfg.style == "cosine" else 1.0 - x
    lr = cfg.min_lr + k * (cfg.peak_lr - cfg.min_lr)
    if W > 0:
        lr = np.where(C <= W, cfg.peak_lr * C / W, lr)
    return np.where(C >= D, cfg.min_lr, lr)


def counter_before(cumulative_tokens: np.ndarray, step_tokens: np.ndarray) -> np.ndarray:
    """The effective-token counter as it stood *before* each step (the value that drives that
    step's LR): the cumulative count through the step, less the step's own tokens. The one place
    this rule lives."""
    return np.asarray(cumulative_tokens) - np.asarray(step_tokens)
