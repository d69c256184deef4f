"""Fault catalogue: each case reproduces a fault end to end through the command line on fixture
data and checks that it ends in a clear error or correct output, with nothing half-written read."""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from cli_helpers import ROOT, epoch_losses, run_fit

from scmm_lightning.callbacks import RunCheckpoint


def fit_command(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "scmm_lightning", "fit", "--config", str(ROOT / "experiments/synthetic.yaml"),
        "--data.init_args.source.init_args.num_subjects", "3", "--data.init_args.source.init_args.batch_size", "64",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(out),
        "--trainer.logger.init_args.save_dir", str(out), *extra,
    ]  # fmt: skip


def test_killed_fit_leaves_a_resumable_weights_only_checkpoint(tmp_path: Path) -> None:
    """SIGKILL a shipped config's fit after a few epochs: last.ckpt is there (written every epoch),
    loads with weights_only=True, and --ckpt_path resumes from its epoch."""
    proc = subprocess.Popen(fit_command(tmp_path / "run", "--trainer.max_epochs", "50"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    ckpt = None
    try:
        while time.time() < deadline:
            found = list((tmp_path / "run").rglob("last.ckpt"))
            if found and torch.load(found[0], weights_only=True)["epoch"] >= 2:
                ckpt = found[0]
                break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert ckpt is not None, "no last.ckpt after 3 epochs"
    state = torch.load(ckpt, weights_only=True)
    epoch = state["epoch"]
    assert not list(ckpt.parent.glob(".*.partial"))  # the temp file of a write is never left beside it
    resumed = subprocess.run(
        fit_command(tmp_path / "resumed", "--trainer.max_epochs", str(epoch + 2), "--ckpt_path", str(ckpt),
                    "--trainer.callbacks+=scmm_lightning.callbacks.RunSummary"),
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(epoch_losses(tmp_path / "resumed")) == 1  # only the epoch after the checkpoint's ran


def test_a_full_disk_keeps_the_previous_checkpoint(tiny_config: Path, tmp_path: Path, monkeypatch) -> None:
    """The third epoch's checkpoint write fails half-way (ENOSPC): the second epoch's last.ckpt is
    still whole under its name and no partial file is left."""
    same_dir = ("--trainer.logger.init_args.version", "0")  # the resumed run writes where the first did
    run_fit(tiny_config, tmp_path, "--trainer.max_epochs", "2", *same_dir)
    (ckpt,) = list(tmp_path.rglob("last.ckpt"))
    before = ckpt.read_bytes()
    real = L.Trainer.save_checkpoint

    def full_disk(self, filepath, weights_only=False, storage_options=None):  # noqa: ANN001
        Path(filepath).parent.mkdir(parents=True, exist_ok=True)
        Path(filepath).write_bytes(b"PK\x03\x04 truncated")
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))

    monkeypatch.setattr(L.Trainer, "save_checkpoint", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_fit(tiny_config, tmp_path, "--trainer.max_epochs", "3", "--ckpt_path", str(ckpt), *same_dir)
    monkeypatch.setattr(L.Trainer, "save_checkpoint", real)
    assert ckpt.read_bytes() == before and torch.load(ckpt, weights_only=True)["epoch"] == 1
    assert not [p for p in ckpt.parent.iterdir() if p.name.endswith(".partial")]
    assert isinstance(RunCheckpoint(), L.pytorch.callbacks.ModelCheckpoint)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def test_a_code_carrying_checkpoint_is_refused_by_transfer(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Exploit(marker)}, bad, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    assert not marker.exists()
    out = subprocess.run(
        [sys.executable, "-m", "scmm_lightning", "transfer", "--config", str(ROOT / "tests/configs/tiny_pair.yaml"),
         "--ckpt_path", str(bad), "--out_dir", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0 and not marker.exists()
    assert str(bad) in out.stderr and "refused" in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 4  # one short message, no traceback
