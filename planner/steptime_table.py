"""T over a table of lengths: the step-time model (`planner.steptime`'s named parts) evaluated
once over every token count a caller needs, then looked up for each step and breakdown.

    T(r, c)       = accumulation x micro_batch(r, c) + optimizer + exposed all-reduce
    micro_batch   = L_full x layer(c) + L_ltd x layer_dropping(min(r, c)) + head(c)
                    (a dropping layer whose r >= c runs whole: layer(c))
"""

from __future__ import annotations

import numpy as np

from planner.arrays import sorted_unique
from planner.device import DeviceProfile
from planner.steptime import (
    HEAD_KERNELS,
    Seconds,
    StepShape,
    allreduce_s,
    attention_core_s,
    drop_bytes,
    head_fresh_s,
    head_matmul_s,
    head_memory_bytes,
    layer_fresh_s,
    layer_matmul_s,
    layer_memory_bytes,
    layer_with_launches,
    loss_s,
    memory_s,
    optimizer_s,
    with_launches,
)


class StepTimes:
    """T(c, min(r, c)) and its parts for one step shape on one device.

    Every part that depends on a token count is evaluated once, over every distinct count the
    caller will ask about (`lengths`), in one vectorised pass; steps and breakdowns then look
    them up. (A plan needs a hundred segments' step times and two breakdowns: one pass over a
    few hundred lengths, instead of a pass per part per length.)
    """

    def __init__(self, shape: StepShape, profile: DeviceProfile, lengths: np.ndarray) -> None:
        S = shape.model.seq_len
        self.shape, self.profile = shape, profile
        self.n = n = sorted_unique(np.append(np.asarray(lengths, dtype=np.int64), S))
        # The parts of a layer at each n, added in order: matmuls, attention core, memory.
        self.matmul = layer_matmul_s(n, shape, profile)
        self.attention = attention_core_s(n, shape, profile)
        self.memory_bytes = layer_memory_bytes(n, shape, profile)
        self.fresh = layer_fresh_s(n, shape, profile)
        work = self.matmul + self.attention + memory_s(self.memory_bytes, profile) + self.fresh
        self.layer_full = layer_with_launches(work, n, shape, profile, dropping=False)
        self.layer_dropping = layer_with_launches(work, n, shape, profile, dropping=True)
        # The head's, at each n as the sequence (`head_s`'s order).
        self.head_matmul = np.broadcast_to(head_matmul_s(shape, profile, n), n.shape)
        self.head_memory_bytes = head_memory_bytes(shape, profile, n)
        self.loss = np.broadcast_to(loss_s(shape, profile, n), n.shape)
        self.head_fresh = np.broadcast_to(head_fresh_s(shape, profile, n), n.shape)
        head_work = (
            self.head_matmul
            + memory_s(self.head_memory_bytes, profile)
            + self.loss
            + self.head_fresh
        )
        self.head = with_launches(head_work, HEAD_KERNELS, profile)
        self.optimizer = optimizer_s(shape, profile)
        full = self.micro_batch_s(np.asarray([S]), np.asarray([S]))
        self.exposed = 0.0
        if shape.num_gpus > 1:
            self.exposed = allreduce_s(shape, profile, float(full[0]) * 2 / 3)

    def at(self, n: np.ndarray) -> np.ndarray:
        """Index of each token count in the table."""
        return np.searchsorted(self.n, n)

    def micro_batch_s(self, r: np.ndarray, c: np.ndarray) -> Seconds:
        """Forward and backward of one micro-batch: full layers at c, dropping layers at r where
        r < c (else they run whole), the head at c."""
        c = np.asarray(c, dtype=np.int64)
        r = np.minimum(np.asarray(r, dtype=np.int64), c)
        at_c = self.layer_full[self.at(c)]
        full = self.shape.num_full_layers * at_c
        ltd = self.shape.num_ltd_layers * np.where(r < c, self.layer_dropping[self.at(r)], at_c)
        return full + ltd + self.head[self.at(c)]

    def step_time_s(self, r: np.ndarray, c: np.ndarray | None = None) -> Seconds:
        """T: one optimizer step, seconds, for each (r, c) (c: S by default)."""
        r = np.atleast_1d(np.asarray(r))
        c = np.full_like(r, self.shape.model.seq_len) if c is None else c
        micro = self.micro_batch_s(r, c)
        return self.shape.accumulation * micro + self.optimizer + self.exposed

    def breakdown_s(self, r: int) -> dict[str, float]:
        """The named parts of T(r) at the full sequence, seconds (launch overhead shown where
        it exceeds the work)."""
        shape, profile = self.shape, self.profile
        S = shape.model.seq_len
        rr = min(r, S)
        n_ltd = rr if rr < S else S
        k, L_ltd, L_full = shape.accumulation, shape.num_ltd_layers, shape.num_full_layers
        i_s, i_ltd = self.at(np.asarray(S)), self.at(np.asarray(n_ltd))

        def layers(values: np.ndarray) -> float:
            return k * (L_full * float(values[i_s]) + L_ltd * float(values[i_ltd]))

        memory_bytes = (
            L_full * self.memory_bytes[i_s]
            + L_ltd * self.memory_bytes[i_ltd]
            + self.head_memory_bytes[i_s]
        )
        parts: dict[str, float] = {
            "matmuls": layers(self.matmul) + k * float(self.head_matmul[i_s]),
            "attention": layers(self.attention),
            "memory_bound": k
            * float(memory_s(memory_bytes, profile) + self.loss[i_s] + self.head_fresh[i_s])
            + layers(self.fresh),
            "token_drop": k * L_ltd * float(memory_s(drop_bytes(np.asarray(rr), shape), profile)),
            "optimizer": self.optimizer,
        }
        total = float(self.step_time_s(np.asarray([rr]))[0])
        full = float(self.micro_batch_s(np.asarray([S]), np.asarray([S]))[0])
        parts["allreduce_exposed"] = allreduce_s(shape, profile, full * 2 / 3)
        parts["launch_overhead"] = max(0.0, total - sum(parts.values()))
        return parts


def step_time_s(
    r: np.ndarray | int,
    shape: StepShape,
    profile: DeviceProfile,
    seq: np.ndarray | None = None,
) -> Seconds:
    """T(r): one optimizer step, seconds, for each reserved length in `r` (with curriculum
    learning, `seq` holds each step's sequence length c: T(c, min(r, c)))."""
    r = np.atleast_1d(np.asarray(r, dtype=np.int64))
    c = np.full_like(r, shape.model.seq_len) if seq is None else np.asarray(seq, dtype=np.int64)
    table = StepTimes(shape, profile, np.concatenate((np.minimum(r, c), c)))
    return table.step_time_s(r, c)
