"""Several GPUs of one machine: torchrun and DistributedDataParallel.

    torchrun --nproc-per-node 8 -m ltd validate ...     # or any script calling run_validation

Under torchrun (WORLD_SIZE > 1) `run_validation` joins the process group (NCCL on CUDA, gloo on
the CPU), gives each process its own GPU (LOCAL_RANK), wraps the models in DDP and draws each
rank's data and token drops from its own stream. Step times then include the gradient all-reduce;
throughput and MFU stay per device. Every rank returns the same result; report it from rank 0.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def init_distributed(device_setting: str = "auto") -> bool:
    """Join the process group torchrun describes in the environment; False when not launched
    with several processes. NCCL when CUDA is used, gloo otherwise."""
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return False
    use_cuda = device_setting != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` in DistributedDataParallel when a process group is up, else unchanged."""
    if not dist.is_initialized():
        return model
    device_ids = [torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def agree(value: float) -> float:
    """Rank 0's value on every rank (so all ranks size and report the job alike)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, src=0)
    return float(t.item())
