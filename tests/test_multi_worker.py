"""MultiWorkerMirroredStrategy with real worker processes on 127.0.0.1.

Each test starts two worker processes with `TF_CONFIG`, as a cluster manager
(Kubernetes, a TPU pod's launcher, a shell loop) would, on one shared
model_dir.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tftransfer import configs, experiment, loaded_run
from tftransfer.training import history

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(HERE)
#: bound on one worker process's life; the runs take under a minute each.
TIMEOUT = 300


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(command, ports, index, log):
    env = dict(os.environ)
    env["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(process, log_path):
    try:
        code = process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return code, open(log_path, encoding="utf-8", errors="replace").read()


@pytest.fixture
def cluster(tmp_path):
    """`start(commands, name)`: one process per command as workers 0..n-1.

    Returns (process, log path)s; whatever is still running when the test ends
    (a failed assertion mid-run) is killed, so no worker outlives its test.
    """
    started = []

    def start(commands, name):
        ports = _free_ports(len(commands))
        group = []
        for index, command in enumerate(commands):
            log_path = tmp_path / f"{name}-worker{index}.log"
            with open(log_path, "w") as log:
                group.append((_start(command, ports, index, log), log_path))
        started.extend(process for process, _ in group)
        return group

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def worker_params(tiny_params, tmp_path):
    tiny_params.override(
        {
            "runtime": {"distribution_strategy": "multi_worker_mirrored"},
            "trainer": {"log_every": 1, "epochs": 1},
            "data": {"validation": {"path": ""}},
        }
    )
    return tiny_params


def _losses(model_dir):
    return [r["loss"] for r in history.read(model_dir) if "loss" in r]


@pytest.mark.slow
def test_two_workers_match_one_process_and_only_the_chief_writes(worker_params, tmp_path, cluster):
    config = str(tmp_path / "multi_worker.yaml")
    configs.save(worker_params, config)
    model_dir = str(tmp_path / "shared_run")
    driver = os.path.join(HERE, "helpers", "multi_worker_driver.py")
    workers = cluster(
        [
            [sys.executable, driver, config, model_dir, str(tmp_path / f"weights{i}.npz")]
            for i in range(2)
        ],
        "train",
    )
    for process, log_path in workers:
        code, log = _wait(process, log_path)
        assert code == 0, log[-3000:]
    assert "on 2 replica(s): global batch 8, 4 per replica" in log

    one = worker_params.replace(runtime={"distribution_strategy": "one_device"})
    single_dir = str(tmp_path / "single")
    experiment.train(one, single_dir)

    chief, other = np.load(tmp_path / "weights0.npz"), np.load(tmp_path / "weights1.npz")
    assert len(chief.files) > 10
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], other[key])
    single = loaded_run.LoadedRun(single_dir, "latest").model.weights
    for key, weight in zip(chief.files, single):
        np.testing.assert_allclose(chief[key], weight.numpy(), atol=1e-5)
    # Each global batch is split between the workers: the loss is the one
    # a single process computes on the same batch.
    assert len(_losses(model_dir)) == 7
    np.testing.assert_allclose(_losses(model_dir), _losses(single_dir), rtol=1e-4)

    # One history (the chief's), one set of checkpoints, no worker folder left.
    entries = sorted(os.listdir(model_dir))
    assert not [e for e in entries if e.startswith("workertemp_")], entries
    assert {"checkpoints", "history.jsonl", "params.yaml", "train"} <= set(entries)
    assert [r["step"] for r in history.read(model_dir) if "loss" in r] == list(range(1, 8))


@pytest.mark.slow
def test_a_killed_worker_restarts_and_training_resumes_from_the_checkpoint(
    worker_params, tmp_path, cluster
):
    worker_params.override({"trainer": {"train_steps": 100, "checkpoint_every": 20}})
    config = str(tmp_path / "multi_worker.yaml")
    configs.save(worker_params, config)
    model_dir = str(tmp_path / "shared_run")
    command = [
        sys.executable,
        "-m",
        "tftransfer.cli",
        "train",
        f"--config_file={config}",
        f"--model_dir={model_dir}",
    ]
    (chief, chief_log), (worker, worker_log) = cluster([command] * 2, "first")
    checkpoint = os.path.join(model_dir, "checkpoints", "ckpt-40.index")
    deadline = time.monotonic() + TIMEOUT
    # Poll for the chief's second checkpoint: the kill must land mid-run.
    while not os.path.exists(checkpoint) and chief.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=TIMEOUT)
    # The chief's next all-reduce fails; it exits, keeping its checkpoints.
    code, log = _wait(chief, chief_log)
    assert code != 0
    assert "a worker of this run was lost" in log, log[-3000:]
    killed_at = max(_losses_steps(model_dir))
    assert killed_at < 100

    # The cluster manager restarts both (same command, same TF_CONFIG roles).
    for process, log_path in cluster([command] * 2, "restart"):
        code, log = _wait(process, log_path)
        assert code == 0, log[-3000:]
        assert "Resuming from" in log
    steps = _losses_steps(model_dir)
    assert max(steps) == 100
    checkpoints = sorted(os.listdir(os.path.join(model_dir, "checkpoints")))
    assert "ckpt-100.index" in checkpoints
    assert not [e for e in os.listdir(model_dir) if e.startswith("workertemp_")]


def _losses_steps(model_dir):
    return [r["step"] for r in history.read(model_dir) if "loss" in r]
