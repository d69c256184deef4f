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
import numpy as np
import pytest
import torch
from cli_helpers import ROOT, epoch_losses, error_lines, in_process, run_fit


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
    out = in_process(
        [sys.executable, "-m", "scmm_lightning", "transfer", "--config", str(ROOT / "tests/configs/tiny_pair.yaml"),
         "--ckpt_path", str(bad), "--out_dir", str(tmp_path / "out")]
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
    with pytest.raises(CorpusError, match=r"line 4: .*a\.edf from 0 s to 10 s \(rest\) repeats line 2"):
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
    # a real interpreter: the message names the option as typed on its command line (sys.argv)
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
    out = in_process(
        [sys.executable, "-m", "scmm_lightning", "fit", "--config", str(tiny_config), "--ckpt_path", str(cut)]
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
    out = in_process(
        [sys.executable, "-m", "scmm_lightning", "fit", "--config", str(tiny_config), "--ckpt_path", str(bad)]
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


def _table_error(root: Path, body: str) -> str:
    from scmm_lightning.corpora import CorpusError, RecordingsReader

    (root / "t.csv").write_bytes(body.encode() if isinstance(body, str) else body)
    with pytest.raises(CorpusError) as err:
        RecordingsReader(root, root / "t.csv")
    return str(err.value)


def test_a_table_never_reads_outside_its_root(tmp_path: Path) -> None:
    """Second catalogue, case 1: ``../outside/x.edf`` or an absolute path outside the root is refused,
    naming the line and the resolved path."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (outside / "x.edf").write_bytes(b"")
    (root / "a.edf").write_bytes(b"")
    for name in ("../outside/x.edf", str(outside / "x.edf")):
        message = _table_error(root, f"file,subject,label\na.edf,1,rest\n{name},2,task\n")
        assert "line 3" in message and "outside the root" in message and str(outside / "x.edf") in message


def test_overlapping_spans_are_an_error_after_resolving_paths(tmp_path: Path) -> None:
    """Second catalogue, case 2: a span over two existing ones with another label, the same span
    spelled through ``sub-02/..``, and a whole-file row over segment rows: each names both lines."""
    (tmp_path / "sub-01").mkdir()
    (tmp_path / "sub-02").mkdir()
    (tmp_path / "sub-01" / "run1.edf").write_bytes(b"")
    head = "file,subject,label,start,stop\nsub-01/run1.edf,1,calm,0,4\nsub-01/run1.edf,1,calm,4,8\n"
    cases = {
        "sub-01/run1.edf,1,excited,2,6": ("line 4", "overlaps line 2", "excited"),
        "sub-02/../sub-01/run1.edf,2,excited,0,4": ("line 4", "repeats line 2"),
        "sub-01/run1.edf,1,excited,,": ("line 4", "overlaps line 2", "its end"),
    }
    for row, expected in cases.items():
        message = _table_error(tmp_path, head + row + "\n")
        for text in expected:
            assert text in message, (row, message)
    # touching spans (0-4, 4-8) are not an overlap: the head alone is accepted up to the file check
    from scmm_lightning.corpora.recordings_table import read_table

    (tmp_path / "t.csv").write_text(head)
    assert len(read_table(tmp_path / "t.csv", tmp_path)) == 2


def test_a_directory_row_and_a_non_utf8_table_are_named(tmp_path: Path) -> None:
    (tmp_path / "folder.edf").mkdir()
    assert "line 2: file" in _table_error(tmp_path, "file,subject,label\nfolder.edf,1,rest\n")
    assert "is a directory" in _table_error(tmp_path, "file,subject,label\nfolder.edf,1,rest\n")
    message = _table_error(tmp_path, b"file,subject,label\na.edf,1,rest\nb.edf,2,caf\xe9\n")
    assert "t.csv: line 3: byte 0xe9 is not UTF-8" in message


def _flip_bit(path: Path, dataset: str, byte: int = 40) -> None:
    """Flip one bit inside the first stored chunk of ``dataset`` (as a failing disk would)."""
    import h5py

    with h5py.File(path, "r") as h5:
        offset = h5[dataset].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + byte] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("dataset", ["features", "label"])
def test_a_bit_flipped_cache_is_rebuilt_by_prepare_and_refused_by_load(
    dataset: str, seed_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Second catalogue, case 4: one flipped bit in the cache's features or labels. ``load_cache``
    refuses it naming the file; ``prepare`` warns, rebuilds it (not "reused") and reads the corpus's
    true values again."""
    from scmm_lightning.cli.prepare import main as prepare_main
    from scmm_lightning.corpora import SeedReader
    from scmm_lightning.corpora.cache import build_cache, load_cache

    path = build_cache(SeedReader(seed_root), tmp_path, progress=False)
    clean = load_cache(path)
    _flip_bit(path, dataset)
    with pytest.raises(ValueError, match=rf"{path.name}: damaged or unreadable feature cache.*prepare"):
        load_cache(path)
    with pytest.warns(UserWarning, match=rf"{path.name}: damaged.*rebuilding it"):
        rc = prepare_main(["--corpus", "seed", "--root", str(seed_root), "--cache_dir", str(tmp_path), "--no_progress"])
    assert rc == 0
    assert "built in" in capsys.readouterr().out
    again = load_cache(path)
    np.testing.assert_array_equal(again.features, clean.features)
    np.testing.assert_array_equal(again.metadata["label"], clean.metadata["label"])


def test_sigterm_ends_fit_with_status_143(tmp_path: Path) -> None:
    """Second catalogue, case 5: SIGTERM during a shipped config's fit exits 143 with one line (it
    exited 0: Lightning raises a SystemExit without a code), so reproduce/ablations stop on it."""
    proc = subprocess.Popen(fit_command(tmp_path / "run", "--trainer.max_epochs", "200"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 240
    try:
        while time.time() < deadline and not list((tmp_path / "run").rglob("last.ckpt")):
            time.sleep(0.3)
        assert list((tmp_path / "run").rglob("last.ckpt")), "training never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-1500:]
    assert [line for line in err.splitlines() if "SIGTERM" in line and "exit 143" in line]
    assert not list((tmp_path / "run").rglob("transfer_results.csv"))


def test_reproduce_and_ablations_read_only_this_runs_complete_results(tmp_path: Path) -> None:
    """Second catalogue, cases 5 and 6: an older run's table in the run folder is never taken for this
    run's; a result set whose write was killed between two files (csv of the new run, md/png/json of
    the old one, no manifest) is refused naming the file."""
    from scmm_lightning.evaluation import results as results_module

    run_dir = tmp_path / "run"
    rows = [{c: None for c in results_module.COLUMNS} | {"method": "pretrained", "subject": 1, "accuracy": 0.5,
                                                         "balanced_accuracy": 0.5}]  # fmt: skip
    old = results_module.write_results(run_dir / "v0", rows, None, ["a", "b"], "old")["csv"]
    os.utime(old, (time.time() - 100, time.time() - 100))
    started = time.time()
    with pytest.raises(SystemExit, match=r"run: the run wrote no transfer_results\.csv \(an older one is not used\)"):
        results_module.results_of_this_run(run_dir, started)
    # a complete set of this run is taken and passes its manifest check
    new = results_module.write_results(run_dir / "v1", rows, None, ["a", "b"], "new")["csv"]
    assert results_module.results_of_this_run(run_dir, started) == new
    # a run killed after writing its csv (the md's write raises here, as a SIGKILL there would stop it)
    rows[0]["accuracy"] = 0.9
    real = results_module.atomic_write

    def dies_on_md(path: Path, data: bytes) -> None:
        if path.suffix == ".md":
            raise KeyboardInterrupt
        real(path, data)

    results_module.atomic_write = dies_on_md
    try:
        with pytest.raises(KeyboardInterrupt):
            results_module.write_results(run_dir / "v1", rows, None, ["a", "b"], "newer")
    finally:
        results_module.atomic_write = real
    assert "0.9" in new.read_text() and "newer" not in (run_dir / "v1" / "transfer_results.md").read_text()
    with pytest.raises(SystemExit, match=r"transfer_results\.csv: its result set has no transfer_results\.manifest"):
        results_module.results_of_this_run(run_dir, started)
    assert oct(new.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # shared-readable, not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of the (shrunk) demo fit, its checkpoint and config: shared by the tests that
    resume from it or transfer it (read only)."""
    out = tmp_path_factory.mktemp("one_epoch") / "run"
    first = in_process(fit_command(out, "--trainer.max_epochs", "1"))
    assert first.returncode == 0, first.stderr[-1500:]
    return out


def test_resuming_with_another_model_setting_is_refused_in_one_line(one_epoch_run: Path, tmp_path: Path) -> None:
    """Second catalogue, case 3: Lightning merged the checkpoint's hyper-parameters over the command
    line, so ``--ckpt_path last.ckpt --model.init_args.temperature 0.2`` (or another width, or another
    model class) ran with the checkpoint's values and said nothing. Refused, naming each option; the
    same settings resume."""
    (ckpt,) = list(one_epoch_run.rglob("last.ckpt"))
    for extra, named in [
        (["--model.init_args.temperature", "0.2"], "model.init_args.temperature 0.5 (asked 0.2)"),
        (["--model.init_args.projection_dim", "64"], "model.init_args.projection_dim"),
        (["--model.class_path", "scmm_lightning.tasks.HardContrastivePretraining"], "model.class_path"),
    ]:
        bad = in_process(fit_command(tmp_path / "again", "--trainer.max_epochs", "2", "--ckpt_path", str(ckpt), *extra))
        assert bad.returncode != 0 and len(error_lines(bad.stderr)) <= 2, bad.stderr[-1500:]
        assert named in bad.stderr and str(ckpt) in bad.stderr, bad.stderr[-1500:]


@pytest.mark.parametrize(
    "extra,named",
    [
        (["--data.init_args.target.init_args.label_map", "{0: 0, 1: 5}"], "label_map"),
        (["--data.init_args.source.init_args.channels", "[FP1, FPX, CZ]"], "['FPX'] are not in the montage"),
        (["--data.init_args.source.init_args.channels", "[FP1, CZ, fp1]"], "['fp1'] are listed twice"),
        (["--data.init_args.source.init_args.batch_size", "100000"], "fewer than batch_size=100000"),
        (["--data.init_args.source.init_args.channels", "[FP1, CZ]"], "target.init_args.channels"),
    ],
    ids=["label-map-out-of-range", "channel-typo", "duplicate-channel", "batch-above-corpus", "source-only-channels"],
)
def test_bad_data_settings_end_in_at_most_two_lines(
    extra: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Second catalogue, second list: each bad setting is one error line naming the option (it was a
    traceback of 19-58 lines, or, for a duplicate channel, accepted). The real command line, in this
    process (``fit_command`` without the interpreter); the CLI end to end is run by the SIGTERM and
    resume tests."""
    from scmm_lightning.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(fit_command(tmp_path, "--trainer.max_epochs", "1", *extra)[3:])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err[-1500:]
    assert len(error_lines(err)) <= 2 and named in err, err[-1500:]


@pytest.mark.parametrize("bad", ["complex", "4 bands", "6 bands"])
def test_a_malformed_seed_iv_trial_names_its_own_file(bad: str, seed_iv_root: Path, tmp_path: Path) -> None:
    """Second catalogue: a complex-valued trial was silently truncated to its real part; a trial with 4
    or 6 bands named no file (or the healthy one). Each is one error naming the damaged file and key."""
    import shutil

    import scipy.io

    from scmm_lightning.corpora import CorpusError, SeedIVReader

    root = tmp_path / "SEED_IV"
    shutil.copytree(seed_iv_root, root)
    path = sorted((root / "eeg_feature_smooth" / "1").glob("*.mat"))[-1]
    mat = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    arr = mat["de_LDS3"]
    if bad == "complex":
        mat["de_LDS3"] = arr + 1j * arr
    else:
        bands = int(bad[0])
        mat["de_LDS3"] = np.concatenate([arr, arr[..., :1]], axis=2) if bands == 6 else arr[..., :4]
    scipy.io.savemat(path, mat)
    with pytest.raises(CorpusError) as err:
        list(SeedIVReader(root).sessions())
    message = str(err.value)
    assert message.startswith(f"{path}: de_LDS3"), message
    assert ("complex" in message) if bad == "complex" else (f"has {bad[0]} bands, expected 5" in message)


def test_transfer_refuses_a_foreign_checkpoint_or_an_unwritable_out_dir_in_one_line(
    one_epoch_run: Path, tmp_path: Path
) -> None:
    """Second catalogue: ``transfer`` with a checkpoint of another method or another channel count
    (a state_dict traceback), or an ``--out_dir`` it cannot write (found only after the whole
    evaluation, the table lost): each is one line, before any evaluation runs."""
    (ckpt,) = list(one_epoch_run.rglob("last.ckpt"))
    (config,) = list(one_epoch_run.rglob("config.yaml"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases = [
        (["--config", str(ROOT / "experiments/methods/hard_contrastive.yaml")], "do not fit the config's"),
        (
            [
                "--data.init_args.source.init_args.channels",
                "[FP1, CZ]",
                "--data.init_args.target.init_args.channels",
                "[FP1, CZ]",
            ],
            "shapes",
        ),  # fmt: skip
        (["--out_dir", str(blocker / "out")], "cannot write results to"),
    ]
    for extra, named in cases:
        bad = in_process(
            [sys.executable, "-m", "scmm_lightning", "transfer", "--config", str(config), "--ckpt_path", str(ckpt),
             "--trainer.enable_progress_bar", "false", *extra]
        )  # fmt: skip
        assert bad.returncode != 0 and len(error_lines(bad.stderr)) <= 2, bad.stderr[-1500:]
        assert named in bad.stderr and "evaluation (" not in bad.stderr, bad.stderr[-1500:]


def test_the_seed_progress_bar_counts_sessions_not_label_mat(seed_root: Path) -> None:
    from scmm_lightning.corpora import SeedReader

    reader = SeedReader(seed_root)
    sessions = len(list(reader.sessions()))
    assert reader.num_sessions() == sessions == len(reader.source_files()) - 1  # label.mat is a source file


def test_a_target_split_without_test_trials_says_so(tiny_config: Path, tmp_path: Path) -> None:
    """Second catalogue: a target split that tests nothing advised "use a test split", the config in
    use; now one line says that split leaves no test windows and how to give it some."""
    bad = in_process(
        fit_command(tmp_path, "--trainer.max_epochs", "1", "--data.init_args.target.init_args.split.train_trials", "10")
    )
    assert bad.returncode == 2, bad.stderr[-1500:]
    assert len(error_lines(bad.stderr)) <= 2 and "leaves no test windows" in bad.stderr, bad.stderr[-1500:]


def test_batch_size_one_warns_that_the_contrastive_loss_has_nothing_to_compare() -> None:
    """Second catalogue: ``batch_size 1`` trained with a contrastive loss of 0 at every step and no
    word; now one warning naming the setting (it is legal for a reconstruction-only method)."""
    from scmm_lightning.datamodules.dataset import WindowDataset, training_loader

    data = WindowDataset(
        np.zeros((4, 3, 5), np.float32), {k: np.arange(4) for k in ("subject", "session", "trial", "window", "label")}
    )
    with pytest.warns(UserWarning, match=r"batch_size=1 gives a contrastive loss no other window"):
        training_loader(data, 1, 0, 0, "the test split")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        training_loader(data, 2, 0, 0, "the test split")  # no warning at 2
