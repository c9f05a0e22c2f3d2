"""Two CPU processes (gloo) train exactly like one process on the combined batch."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ragtune.config import load_config
from ragtune.model import Encoder
from ragtune.train import TrainConfig, train

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_rank(rank: int, world: int, port: int, values: dict) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RAGTUNE_PROGRESS": "0",
        }
    )
    torch.set_num_threads(1)
    train(load_config(TrainConfig, None, (), **values))
    # The weights are compared from the saved folders. gloo's background threads can abort the
    # interpreter's own shutdown, so leave without it; a failure above still fails the test.
    os._exit(0)


def test_two_processes_match_one_process_on_the_global_batch(tmp_path, tiny_model_dir, pairs_file):
    common = {
        "model": str(tiny_model_dir),
        "data": str(pairs_file),
        "epochs": 1,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        "dev_fraction": 0.0,
        "threads": 1,
        "precision": "fp32",  # equality across batch shapes is an fp32 property
    }
    train(
        load_config(TrainConfig, None, (), **common, batch_size=16, output=str(tmp_path / "single"))
    )
    values = {**common, "batch_size": 8, "output": str(tmp_path / "ddp")}
    mp.start_processes(
        run_rank, args=(2, free_port(), values), nprocs=2, join=True, start_method="spawn"
    )
    single = Encoder.load(tmp_path / "single", device="cpu").backbone.state_dict()
    ddp = Encoder.load(tmp_path / "ddp", device="cpu").backbone.state_dict()
    changed = 0
    for name, tensor in single.items():
        torch.testing.assert_close(ddp[name], tensor, rtol=1e-4, atol=2e-6, msg=name)
        changed += int(
            not torch.equal(tensor, Encoder.load(tiny_model_dir).backbone.state_dict()[name])
        )
    assert changed > 0
