"""Two "nodes" x two processes, launched as two torchrun agents that meet through a c10d
rendezvous on loopback (gloo), train exactly like one process on the combined batch.

This is the launch the README gives for several machines (``--nnodes 2 --node-rank 0|1
--rdzv-backend c10d --rdzv-endpoint HOST:PORT``), with 127.0.0.1 as the host: torchrun's
elastic agent, rendezvous and process groups are the real ones; only the network is local.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from ragtune.config import load_config
from ragtune.model import Encoder
from ragtune.train import TrainConfig, train
from tests.train.test_distributed import free_port

pytestmark = pytest.mark.slow

WORKER = """
import json, os, sys
import torch
from ragtune.config import load_config
from ragtune.train import TrainConfig, train

torch.set_num_threads(1)
train(load_config(TrainConfig, None, (), **json.loads(sys.argv[1])))
sys.stdout.flush()
os._exit(0)  # gloo's threads can abort the interpreter's shutdown (see test_distributed.py)
"""


def torchrun_node(node_rank: int, port: int, script, values: dict) -> subprocess.Popen:
    """One node's torchrun agent: two worker processes, rendezvous at 127.0.0.1:port."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=2",
        f"--node-rank={node_rank}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        "--rdzv-id=ragtune-multinode-test",
        f"--rdzv-conf=is_host={int(node_rank == 0)}",  # node 0 hosts the rendezvous store
        "--max-restarts=0",
        str(script),
        json.dumps(values),
    ]
    env = {**os.environ, "RAGTUNE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_nodes_of_two_processes_match_one_process(tmp_path, tiny_model_dir, pairs_file):
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
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    values = {**common, "batch_size": 8, "output": str(tmp_path / "nodes")}  # 4 x 8 = 32
    nodes = [torchrun_node(rank, port, script, values) for rank in (0, 1)]

    train(load_config(TrainConfig, None, (), **common, batch_size=32, output=str(tmp_path / "one")))
    for node in nodes:
        out, _ = node.communicate(timeout=240)
        assert node.returncode == 0, out.decode(errors="replace")[-3000:]

    one = Encoder.load(tmp_path / "one", device="cpu").backbone.state_dict()
    four = Encoder.load(tmp_path / "nodes", device="cpu").backbone.state_dict()
    base = Encoder.load(tiny_model_dir, device="cpu").backbone.state_dict()
    assert set(four) == set(one)
    for name, tensor in one.items():
        torch.testing.assert_close(four[name], tensor, rtol=1e-4, atol=2e-6, msg=name)
    assert any(not torch.equal(one[k], base[k]) for k in base)  # training moved the weights
    # 96 pairs / a global batch of 32: three steps, as in the single process
    steps = [p.name for p in (tmp_path / "nodes" / "run" / "checkpoints").iterdir()]
    assert steps == ["step-00000003"]
