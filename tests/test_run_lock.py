"""One training process per model_dir: the second refuses, a dead owner's lock is taken over."""

import json
import os
import socket

import pytest
from helpers import fresh_process

from tftransfer import experiment
from tftransfer.training import run_lock


def test_a_second_training_on_a_busy_model_dir_refuses_and_writes_nothing(tiny_params, tmp_path):
    model_dir = str(tmp_path / "run")
    with run_lock.run_lock(model_dir):  # the first training, still running
        with pytest.raises(run_lock.RunLockedError, match=f"pid {os.getpid()} on "):
            experiment.train(tiny_params, model_dir)
        assert os.listdir(model_dir) == [run_lock.LOCK_NAME]  # no params, no history
    # Released when the first one ends; the folder it made for the lock goes too.
    assert not os.path.exists(model_dir)


def test_the_lock_of_a_killed_training_is_taken_over(tmp_path):
    lock = tmp_path / run_lock.LOCK_NAME
    lock.write_text(json.dumps({"pid": fresh_process.dead_pid(), "host": socket.gethostname()}))
    with run_lock.run_lock(str(tmp_path)):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_lock_from_another_host_is_reported_not_broken(tmp_path):
    lock = tmp_path / run_lock.LOCK_NAME
    lock.write_text(json.dumps({"pid": 1, "host": "tpu-worker-7", "started": "yesterday"}))
    with pytest.raises(run_lock.RunLockedError, match="pid 1 on tpu-worker-7"):
        with run_lock.run_lock(str(tmp_path)):
            pass
    assert lock.exists()
