"""One training process per model_dir: the second refuses, a dead owner's lock is taken over."""

import json
import os
import socket
import time

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


def test_a_lock_from_another_host_is_reported_while_its_heartbeat_is_fresh(tmp_path):
    lock = tmp_path / run_lock.LOCK_NAME
    lock.write_text(json.dumps({"pid": 1, "host": "tpu-worker-7", "started": "yesterday"}))
    with pytest.raises(run_lock.RunLockedError, match="pid 1 on tpu-worker-7"):
        with run_lock.run_lock(str(tmp_path)):
            pass
    assert lock.exists()


def test_a_lock_from_another_host_without_a_heartbeat_is_taken_over(tmp_path):
    # A chief killed on one host and restarted on another, on a shared folder.
    lock = tmp_path / run_lock.LOCK_NAME
    lock.write_text(json.dumps({"pid": 1, "host": "tpu-worker-7", "started": "yesterday"}))
    silent = time.time() - run_lock.STALE_AFTER_SECONDS - 1
    os.utime(lock, (silent, silent))
    with run_lock.run_lock(str(tmp_path)):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_the_owner_keeps_its_lock_fresh(tmp_path):
    # One heartbeat, observed without waiting: the beat thread's wait returns
    # at once for the first call and stops on the second.
    calls = []

    class Stop:
        def wait(self, seconds):
            calls.append(seconds)
            return len(calls) > 1

    lock = tmp_path / run_lock.LOCK_NAME
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    old = time.time() - 1000
    os.utime(lock, (old, old))
    run_lock._heartbeat(str(lock), os.getpid(), Stop())
    assert calls == [run_lock.HEARTBEAT_SECONDS] * 2
    assert time.time() - os.path.getmtime(lock) < 100
