"""Training: `train()` reads like a table of contents, `train_step()` does one optimizer step.

The reserved length and the learning rate of each step come from the planner's run of the
schedule (`planner.run.Run.series`: the LayerToken schedule driven by the effective-token counter
as Megatron-DeepSpeed keeps it). AdamW, gradient clipping, bf16 autocast on CUDA and fp32 on
the CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from torch import Tensor, nn

from planner.lr import LRConfig
from planner.run import Run
from worker.data import Corpus
from worker.model import Transformer

MLM_MASK_FRACTION = 0.15  # BERT's masked-LM rate


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked for; plain fp32 otherwise."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def unwrap(model: nn.Module) -> Transformer:
    """The model inside a DistributedDataParallel wrapper, or the model itself: the project's
    `Transformer`, or anything with its interface (`worker.hf.TransformersModel`)."""
    core = getattr(model, "module", model)
    if not all(hasattr(core, name) for name in ("shape", "ltd_layer_ids", "causal")):
        raise TypeError(f"expected a Transformer, or one wrapped in DDP; got {type(core).__name__}")
    return cast(Transformer, core)  # the interface it checked


def loss_fn(
    model: nn.Module, inputs_BS: Tensor, targets_BS: Tensor, reserved_length: int | None = None
) -> Tensor:
    """Next-token loss for a GPT; masked-LM loss for an encoder; CLS classification for ViT."""
    core = unwrap(model)
    V = core.shape.vocab_size
    if core.causal:
        logits_BSV = model(inputs_BS, reserved_length)
        return F.cross_entropy(logits_BSV.flatten(0, 1).float(), targets_BS.flatten())
    if getattr(core, "cls_only", False):
        logits_B1V = model(inputs_BS, reserved_length)
        return F.cross_entropy(logits_B1V[:, 0].float(), targets_BS[:, 0])
    # Masked LM: hide a deterministic-per-batch 15% of the inputs behind token V - 1.
    masked_BS = torch.rand(inputs_BS.shape, device=inputs_BS.device) < MLM_MASK_FRACTION
    masked_BS[:, 0] = True  # at least one target per sample
    logits_BSV = model(inputs_BS.masked_fill(masked_BS, V - 1), reserved_length)
    return F.cross_entropy(logits_BSV[masked_BS].float(), inputs_BS[masked_BS])


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs_BS: Tensor,
    targets_BS: Tensor,
    *,
    reserved_length: int | None,
    lr: float,
    amp_dtype: torch.dtype = torch.float32,
    grad_clip: float = 1.0,
    micro_batch_size: int | None = None,
) -> Tensor:
    """One optimizer step at `reserved_length` and `lr` over the batch, accumulated over
    micro-batches of `micro_batch_size` sequences (default: one); returns the batch's mean
    loss (not synchronised)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    mb = micro_batch_size or inputs_BS.shape[0]
    chunks = list(zip(inputs_BS.split(mb), targets_BS.split(mb), strict=True))
    total = torch.zeros((), device=inputs_BS.device)
    for inputs_bS, targets_bS in chunks:
        with autocast(inputs_BS.device, amp_dtype):
            loss = loss_fn(model, inputs_bS, targets_bS, reserved_length) / len(chunks)
        loss.backward()
        total += loss.detach()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def make_optimizer(model: nn.Module, weight_decay: float = 0.1) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and embeddings' 1-d parameters."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=0.0,
        betas=(0.9, 0.95),
    )


@dataclass(frozen=True)
class RunSchedule:
    """What every step of a run uses: its reserved length (None: no dropping) and LR."""

    reserved_lengths: list[int | None]
    lrs: list[float]
    layer_tokens: int  # LayerTokens over the run, for one micro-batch (the plan's counter)
    seqlens: list[int] | None = None  # curriculum learning: each step's sequence length

    @property
    def num_steps(self) -> int:
        return len(self.lrs)


def run_schedule(run: Run, lr: LRConfig) -> RunSchedule:
    """Every step of a planner run as the trainer needs it: the reserved length where a layer
    drops, the LayerToken learning rate on Megatron's counter, and with curriculum learning
    the sequence length (`planner.run.Run.series`, as the schedule CSV prints it)."""
    series = run.series(np.arange(run.num_steps), lr)
    assert series.lr is not None  # asked for
    lengths = [
        int(r) if dropping else None
        for r, dropping in zip(series.reserved_length, series.dropping, strict=True)
    ]
    seqlens = [int(c) for c in series.seqlen] if run.counters.length_curriculum else None
    return RunSchedule(lengths, [float(x) for x in series.lr], run.layer_tokens, seqlens)


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)  # (steps done, held-out loss)

    @property
    def eval_loss(self) -> float | None:
        """The last evaluation's loss (the run's end, where it was evaluated)."""
        return self.evals[-1][1] if self.evals else None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    corpus: Corpus,
    *,
    batch_size: int,
    seq_len: int,
    num_batches: int,
    device: torch.device,
    amp_dtype: torch.dtype,
    seed: int,
    micro_batch_size: int | None = None,
    progress: Callable[[], None] | None = None,
) -> float:
    """Mean held-out loss over `num_batches` fixed batches (the same for every run of one
    `seed`), no dropping, in micro-batches of `micro_batch_size`."""
    was_training = model.training
    model.eval()
    rng = np.random.default_rng(seed + 1_000_003)
    V = unwrap(model).shape.vocab_size
    total, count = 0.0, 0
    for _ in range(num_batches):
        inputs, targets = corpus.batch("heldout", batch_size, seq_len, V, rng)
        mb = micro_batch_size or batch_size
        for inputs_bS, targets_bS in zip(inputs.split(mb), targets.split(mb), strict=True):
            with autocast(device, amp_dtype):
                loss = loss_fn(model, inputs_bS.to(device), targets_bS.to(device))
            total += float(loss) * len(inputs_bS)
            count += len(inputs_bS)
        if progress is not None:
            progress()
    model.train(was_training)
    return total / count


def train(
    model: nn.Module,
    corpus: Corpus,
    schedule: RunSchedule,
    *,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype = torch.float32,
    seed: int = 0,
    eval_batches: int = 4,
    eval_at: tuple[int, ...] | None = None,
    eval_seed: int | None = None,
    micro_batch_size: int | None = None,
    grad_clip: float = 1.0,
    progress: Callable[[float], None] | None = None,
) -> TrainLog:
    """Train `model` through `schedule`; evaluate it on held-out data after each step count in
    `eval_at` (default: at the end). `progress` is called after every step and evaluation
    batch (the worker stops a run from it: a cancel, a lost lease, max_minutes)."""
    # Setup: optimizer, data stream seeded per run (and per rank under DDP).
    optimizer = make_optimizer(model)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    rng = np.random.default_rng([seed, rank])
    core = unwrap(model)
    S, V = core.shape.seq_len, core.shape.vocab_size
    evals_at = set(eval_at if eval_at is not None else (schedule.num_steps,))
    log = TrainLog()
    done = 0.0

    def advance(fraction: float) -> None:
        if progress is not None:
            progress(min(fraction, 1.0))

    def held_out() -> float:
        return evaluate(
            model, corpus, batch_size=batch_size, seq_len=S, num_batches=eval_batches,
            device=device, amp_dtype=amp_dtype, seed=seed if eval_seed is None else eval_seed,
            micro_batch_size=micro_batch_size, progress=lambda: advance(done),
        )  # fmt: skip

    model.train()
    if 0 in evals_at:
        log.evals.append((0, held_out()))
    # Steps: reserved length and LR from the planner, one optimizer step each.
    for step, (r, lr) in enumerate(zip(schedule.reserved_lengths, schedule.lrs, strict=True)):
        inputs, targets = corpus.batch("train", batch_size, S, V, rng)
        if schedule.seqlens is not None:  # curriculum learning: sequences cut to c
            c = schedule.seqlens[step]
            inputs, targets = inputs[:, :c], targets[:, :c]
        loss = train_step(
            model,
            optimizer,
            inputs.to(device),
            targets.to(device),
            reserved_length=r,
            lr=lr,
            amp_dtype=amp_dtype,
            grad_clip=grad_clip,
            micro_batch_size=micro_batch_size,
        )
        log.losses.append(float(loss))
        done = (step + 1) / schedule.num_steps
        advance(done)
        if step + 1 in evals_at:  # held-out evaluation, without dropping
            log.evals.append((step + 1, held_out()))
    return log
