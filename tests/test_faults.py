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


def fit_command(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "scmm_lightning", "fit", "--config", str(ROOT / "experiments/synthetic.yaml"),
        "--data.init_args.source.init_args.num_subjects", "3", "--data.init_args.source.init_args.batch_size", "64",
        "--data.init_args.target.init_args.num_subjects", "2", "--data.init_args.target.init_args.windows_per_trial", "8",
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
        fit_command(tmp_path / "resumed", "--trainer.max_epochs", str(epoch + 2), "--ckpt_path", str(ckpt)),
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


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_a_rewritten_source_with_size_and_mtime_kept_is_not_served_from_the_cache(
    deap_root: Path, tmp_path: Path
) -> None:
    """Rewrite s01.dat with other labels, same size, mtime restored: the next read gets a new cache
    entry with the new labels, not the old one."""
    import importlib.util

    from scmm_lightning.corpora import DeapReader, build_cache, load_cache

    root = _copy(deap_root, tmp_path / "DEAP")
    first = load_cache(build_cache(DeapReader(root), tmp_path / "cache", progress=False))
    target = root / "data_preprocessed_python" / "s01.dat"
    st = target.stat()
    spec = importlib.util.spec_from_file_location("gen", Path(__file__).parent / "data/deap/generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    from scmm_lightning.corpora.safe_pickle import load_numpy_pickle

    obj = load_numpy_pickle(target)
    obj["labels"][:, 0] = 10.0 - obj["labels"][:, 0]  # every valence label flips across 5
    data = gen.deap_pickle(obj)
    assert len(data) == st.st_size
    target.write_bytes(data)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = load_cache(build_cache(DeapReader(root), tmp_path / "cache", progress=False))
    s1 = first.metadata["subject"] == 1
    assert (second.metadata["label"][s1] != first.metadata["label"][s1]).all()


def test_truncated_edf_is_an_error_naming_the_file(tmp_path: Path) -> None:
    from scmm_lightning.corpora import CorpusError, RecordingsReader

    src = ROOT.parent / "shared" / "data" / "eegmat" / "Subject00_1.edf"
    if not src.is_file():
        pytest.skip("eegmat recordings absent")
    cut = tmp_path / "cut.edf"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    (tmp_path / "t.csv").write_text("file,subject,label\ncut.edf,1,rest\n")
    with pytest.raises(CorpusError, match=r"cut\.edf: truncated"):
        RecordingsReader(tmp_path, tmp_path / "t.csv").montage  # noqa: B018


def test_duplicate_table_rows_are_an_error_naming_both_lines(tmp_path: Path) -> None:
    from scmm_lightning.corpora import CorpusError, RecordingsReader

    (tmp_path / "a.edf").write_bytes(b"")
    (tmp_path / "t.csv").write_text(
        "file,subject,label,start,stop\na.edf,1,rest,0,10\na.edf,1,task,10,20\na.edf,1,rest,0,10\n"
    )
    with pytest.raises(CorpusError, match=r"line 4: .*a\.edf from 0\.0 to 10\.0 repeats line 2"):
        RecordingsReader(tmp_path, tmp_path / "t.csv")


def test_misnamed_files_warn_and_absent_sessions_are_errors(
    seed_root: Path, seed_iv_root: Path, tmp_path: Path
) -> None:
    from scmm_lightning.corpora import SeedIVReader, SeedReader, SplitConfig
    from scmm_lightning.datamodules import SeedIVDataModule

    root = _copy(seed_root, tmp_path / "SEED")
    feat = root / "ExtractedFeatures"
    first = sorted(p for p in feat.glob("*_*.mat"))[0]
    first.rename(feat / "2_2013-11-02.mat")
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\) not named .*2_2013-11-02\.mat"):
        SeedReader(root)
    iv = _copy(seed_iv_root, tmp_path / "SEED_IV")
    import shutil

    shutil.rmtree(iv / "eeg_feature_smooth" / "2")
    with pytest.warns(UserWarning, match=r"session folders \[2\] missing"):
        SeedIVReader(iv)
    split = SplitConfig(kind="cross_session", train_sessions=[1, 2], test_sessions=[3])
    dm = SeedIVDataModule(root=str(iv), cache_dir=str(tmp_path / "cache"), sessions=[1, 2, 3], split=split)
    with pytest.raises(ValueError, match=r"\(subject, session\) pairs \[\(1, 2\)"), pytest.warns(UserWarning):
        dm.setup("fit")


def test_a_non_finite_loss_stops_training_naming_the_step(tiny_config: Path, tmp_path: Path) -> None:
    with pytest.raises(FloatingPointError, match=r"epoch 0, batch 0 .*temperature=1e-40"):
        run_fit(tiny_config, tmp_path, "--model.init_args.temperature", "1e-40")


@pytest.mark.parametrize(
    "option,value,allowed",
    [
        ("model.init_args.mask_ratio", "1.5", "value>=0.0 and value<1.0"),
        ("model.init_args.temperature", "0", "value>0"),
    ],
)
def test_an_out_of_range_option_is_one_short_message(tiny_config: Path, option: str, value: str, allowed: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scmm_lightning", "fit", "--config", str(tiny_config), f"--{option}", value],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[0] == f"error: option {option}: {value} is out of range; allowed: {allowed}"
    assert len(out.stderr.strip().splitlines()) == 2


def test_a_truncated_checkpoint_in_fit_is_one_message_naming_it(tiny_config: Path, tmp_path: Path) -> None:
    run_fit(tiny_config, tmp_path / "a", "--trainer.max_epochs", "1")
    (ckpt,) = list((tmp_path / "a").rglob("last.ckpt"))
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[:1000])
    out = subprocess.run(
        [sys.executable, "-m", "scmm_lightning", "fit", "--config", str(tiny_config), "--ckpt_path", str(cut)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0 and f"fit: cannot load checkpoint {cut}" in out.stderr
    assert "Traceback" not in out.stderr


def test_output_location_errors_name_the_path(
    seed_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scmm_lightning.cli.prepare import main as prepare

    blocker = tmp_path / "cache_is_a_file"
    blocker.write_text("")
    capsys.readouterr()
    assert prepare(["--corpus", "seed", "--root", str(seed_root), "--cache_dir", str(blocker), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert str(blocker) in err.splitlines()[0], err  # the first line names the path
    assert prepare(["--corpus", "seed", "--root", str(blocker), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert str(blocker) in err.splitlines()[0], err  # the first line names the path


def test_cache_files_are_shared_readable_and_orphans_go(seed_root: Path, tmp_path: Path) -> None:
    from scmm_lightning.corpora import SeedReader, build_cache, cache_path

    reader = SeedReader(seed_root)
    target = cache_path(reader, tmp_path)
    tmp_path.mkdir(exist_ok=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".{target.name}.{dead.pid}.tmp"
    orphan.write_bytes(b"half")
    old = os.umask(0o022)
    try:
        path = build_cache(reader, tmp_path, progress=False)
    finally:
        os.umask(old)
    assert not orphan.exists()
    assert path.stat().st_mode & 0o777 == 0o644


def test_default_root_dir_alone_moves_the_logs(tiny_config: Path, tmp_path: Path) -> None:
    from scmm_lightning.cli import main

    main(
        ["fit", "--config", str(tiny_config), "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path)]
    )
    assert list(tmp_path.rglob("metrics.csv")) and list(tmp_path.rglob("last.ckpt"))


def test_a_code_carrying_checkpoint_is_refused_by_fit(tiny_config: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Exploit(marker)}, bad)
    out = subprocess.run(
        [sys.executable, "-m", "scmm_lightning", "fit", "--config", str(tiny_config), "--ckpt_path", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0 and not marker.exists() and "refused" in out.stderr


def test_a_full_disk_during_prepare_is_one_error_and_leaves_nothing(seed_root: Path, tmp_path: Path) -> None:
    """A 300 kB tmpfs as the cache directory (needs root; skipped elsewhere): exit 2 with a message
    naming the cache, nothing left in it (this used to end in a segmentation fault, exit 139)."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "scmm_lightning", "prepare", "--corpus", "seed", "--root", str(seed_root),
             "--cache_dir", str(small), "--no_progress"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 2, (out.returncode, out.stderr[-1000:])
        assert f"writing the feature cache {small}" in out.stderr and "No space left" in out.stderr
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
