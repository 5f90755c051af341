"""A disk that fills up mid-run: one error naming the folder and what a checkpoint needs,
nothing half-written left behind, and the same command resumes once there is space.

The run writes into a small tmpfs (mounting one needs root, as in CI; elsewhere
the test is skipped), filled up from inside an evaluation, so that the save of
the best checkpoint right after it meets a full device.
"""

import errno
import os
import subprocess

import pytest
from helpers import dense

from tftransfer.training import checkpoints


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    # Lazily: TensorBoard's writers of the failed run may still hold files open.
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def _fill(folder):
    """Writes a file until the device is full; returns its path."""
    path = os.path.join(folder, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)  # tmpfs allocates whole pages
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return path


def _unfinished(folder):
    return [n for n in os.listdir(folder) if n.endswith("_temp")] if os.path.isdir(folder) else []


def test_a_full_disk_is_one_error_and_the_run_resumes_once_there_is_space(small_disk):
    model_dir = str(small_disk / "run")
    filler = []

    def fill_the_disk():
        if not filler:
            filler.append(_fill(str(small_disk)))

    with pytest.raises(checkpoints.DiskFullError) as error:
        # A checkpoint at step 5, then the evaluation at step 7 fills the disk.
        dense.train(model_dir, epochs=2, checkpoint_every=5, on_evaluate=fill_the_disk)
    message = str(error.value)
    assert message.startswith(f"{model_dir}: no space left on the device")
    assert "a checkpoint of this model takes about" in message and "KB" in message
    assert len(message.splitlines()) == 1
    for folder in ("checkpoints", "best"):
        assert _unfinished(os.path.join(model_dir, folder)) == []
    assert checkpoints.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-5")

    os.remove(filler[0])  # space again: the same command resumes from step 5 and finishes
    trainer, best = dense.train(model_dir, epochs=2, checkpoint_every=5)
    assert trainer.step == 2 * dense.STEPS_PER_EPOCH
    assert best is not None
    assert checkpoints.latest_checkpoint(os.path.join(model_dir, "best")) is not None
