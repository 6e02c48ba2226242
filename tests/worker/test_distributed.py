"""The multi-GPU path on the CPU: two processes, gloo, DistributedDataParallel."""

from __future__ import annotations

import gc
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.servers import free_port

pytestmark = pytest.mark.slow


def _child(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    from planner import plan
    from planner.lr import LRConfig
    from planner.run import Counters, run_for_steps
    from planner.schedule import RandomLTDConfig
    from planner.validation import ValidationSettings
    from tests.factories import tiny_plan_request
    from worker import distributed
    from worker.data import load_corpus
    from worker.throughput import build
    from worker.train import run_schedule, train
    from worker.validate import run_validation

    p = plan(tiny_plan_request(train_steps=100))
    settings = ValidationSettings(
        mode="both", warmup_steps=1, measure_steps=2, train_steps=6, seeds=2, device="cpu"
    )
    result = run_validation(p, settings)
    # Replicas must stay equal through training with different drops and data per rank.
    shape = p.model
    model = build(shape, (1, 2), 0, torch.device("cpu"))
    ltd = RandomLTDConfig(min_value=16, max_value=64, require_steps=4, seq_per_step=16)
    run = run_for_steps(ltd, Counters(shape, 2, 2, 64), 4)
    schedule = run_schedule(run, LRConfig(peak_lr=1e-3, decay_tokens=1000))
    train(
        model,
        load_corpus(max_tokens=100_000),
        schedule,
        batch_size=2,
        device=torch.device("cpu"),
        eval_batches=1,
    )
    flat = torch.cat([q.detach().flatten() for q in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    same = all(torch.equal(gathered[0], g) for g in gathered)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                "result": result.model_dump(mode="json"),
                "replicas_equal": same,
                "world": distributed.world_size(),
            },
            f,
        )
    # Tear down in order: DDP models first, then both ranks meet, then the group. A DDP reducer
    # outliving its process group can abort the interpreter at exit ("terminate called
    # without an active exception", seen once in a while under load).
    del model
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def test_ddp_two_processes_gloo(tmp_path) -> None:
    mp.spawn(_child, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r in ranks:
        assert r["world"] == 2 and r["replicas_equal"]
        assert r["result"]["quality"]["baseline_steps"] == 6  # "both": quality, equal LayerTokens
    assert ranks[0]["result"]["step_times"] == ranks[1]["result"]["step_times"]
