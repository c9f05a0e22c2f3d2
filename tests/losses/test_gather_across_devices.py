"""Cross-device negatives on 2 CPU processes (gloo) equal one process on the combined batch.

Per rank r with local batch x_r: L_r = mean over its local queries, scored against the gathered
documents of both ranks. The single-process loss on the combined batch is L = (L_0 + L_1) / 2.
all_gather's backward sums gradients over ranks, so rank r's local gradient is
sum_r' dL_r'/dx_r = W * dL/dx_r (W = 2); DDP's average over ranks then gives exactly dL/dtheta.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ragtune.losses import InfoNCELoss, gather_with_grad

WORLD, B, N, D = 2, 3, 2, 5  # 2 ranks x 3 local examples, 2 hard negatives each, dim 5


def combined_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {
        "query": torch.randn(WORLD * B, D, generator=g, dtype=torch.float64),
        "positive": torch.randn(WORLD * B, D, generator=g, dtype=torch.float64),
        "negatives": torch.randn(WORLD * B, N, D, generator=g, dtype=torch.float64),
        # example 0 (rank 0) and example 4 (rank 1) share a positive; 2 and 3 share a query
        "positive_ids": torch.tensor([10, 11, 12, 13, 10, 15]),
        "query_ids": torch.tensor([0, 1, 2, 2, 4, 5]),
        # known positives across ranks: query 1 (rank 0) knows 13, the positive of example 3
        # (rank 1), and example 4's first hard negative (rank 1) is a copy of its own positive 11
        "negative_ids": torch.tensor([[20, 21], [22, 23], [24, 25], [26, 27], [11, 29], [30, 31]]),
        "known_positive_ids": torch.tensor(
            [[10, -1], [11, 13], [12, 13], [12, 13], [10, -1], [15, -1]]
        ),
    }


def make_loss() -> InfoNCELoss:
    return InfoNCELoss(scale=5.0, symmetric=True, false_negative_margin=0.5)


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)  # two ranks on a 2-core machine
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=30),
    )
    try:
        local = {k: v[rank * B : (rank + 1) * B].clone() for k, v in combined_batch().items()}
        for name in ("query", "positive", "negatives"):
            local[name].requires_grad_()
        loss_fn = make_loss()
        loss = loss_fn(**local)
        loss.backward()
        gathered = gather_with_grad(local["query"].detach())
        torch.save(
            {
                "loss": loss.detach(),
                "grads": {k: local[k].grad for k in ("query", "positive", "negatives")},
                "stats": loss_fn.last_stats,
                "gathered_rows": gathered.size(0),
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
        # Both ranks finish every collective before either closes its sockets: a rank that tears
        # down while its peer still reads the last message makes the peer's gloo abort.
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # Everything is checked from the saved files. gloo's background threads can abort the
    # interpreter's own shutdown ("terminate called without an active exception"), so leave
    # without it; a failure above still raises and fails the test.
    os._exit(0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_match_the_single_process_loss_and_gradients(tmp_path):
    if not dist.is_available():
        pytest.skip("this torch build has no torch.distributed")
    ctx = mp.start_processes(
        _worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 90
    while not ctx.join(timeout=1):  # raises if a worker failed
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the 2-process gloo run did not finish within 90 s")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    full = {k: v.clone() for k, v in combined_batch().items()}
    for name in ("query", "positive", "negatives"):
        full[name].requires_grad_()
    loss_fn = make_loss()
    loss = loss_fn(**full)
    loss.backward()

    assert all(r["gathered_rows"] == WORLD * B for r in ranks)
    # (a) the mean of the per-rank losses is the combined-batch loss
    mean_loss = sum(r["loss"] for r in ranks) / WORLD
    torch.testing.assert_close(mean_loss, loss.detach(), rtol=1e-5, atol=0)
    # (b) each rank's local gradient = WORLD x the combined-batch gradient of its rows
    for rank, r in enumerate(ranks):
        for name in ("query", "positive", "negatives"):
            want = WORLD * full[name].grad[rank * B : (rank + 1) * B]
            err = (r["grads"][name] - want).norm() / want.norm()
            assert err < 1e-5, f"rank {rank} {name}: relative error {err:.2e}"
    # the masks decided on each rank add up to the single-process ones (ids were gathered)
    for key in (
        "masked_false_negatives",
        "masked_by_margin",
        "masked_known_positives",
        "masked_known_hard_negatives",
    ):
        assert sum(r["stats"][key] for r in ranks) == loss_fn.last_stats[key]
    # 2 pairs x 2 rows x 2 directions by the duplicate rules, and 3 more known positives only:
    # p3 and n40 for query 1, and query 1 for p3 in the symmetric term
    assert loss_fn.last_stats["masked_false_negatives"] == 11.0
    assert loss_fn.last_stats["masked_known_positives"] == 11.0  # 8 of them also duplicates
    assert loss_fn.last_stats["masked_known_hard_negatives"] == 1.0


def test_without_a_process_group_gather_is_the_identity():
    t = torch.ones(2, 3, requires_grad=True)
    assert gather_with_grad(t) is t
