"""Exported encoders (issue 24): ``export`` -> a folder with no pickle -> ``load_encoder`` in a process
that never imports Lightning gives the checkpoint's embeddings bitwise; the stored normalisation is
the source's training-split statistics; ``--model.init_args.pretrained`` and ``transfer --encoder``
start from it; bad folders and montages are one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import ROOT, error_lines, in_process, run_fit

from scmm_lightning.corpora import SyntheticCorpusSpec, generate_synthetic_corpus, select_channels
from scmm_lightning.model import CNNEncoder

TINY_PAIR = ROOT / "tests" / "configs" / "tiny_pair.yaml"
COMMAND = [sys.executable, "-m", "scmm_lightning"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny synthetic-pair fit (its checkpoint and transfer table)."""
    out = tmp_path_factory.mktemp("fit")
    run_fit(TINY_PAIR, out, "--trainer.max_epochs", "1")
    return out


@pytest.fixture(scope="module")
def checkpoint(run: Path) -> Path:
    (ckpt,) = run.rglob("last.ckpt")
    return ckpt


@pytest.fixture(scope="module")
def folder(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "encoder"
    done = in_process([*COMMAND, "export", "--ckpt_path", str(checkpoint), "--out", str(out)])
    assert done.returncode == 0, done.stderr
    return out


def checkpoint_encoder(checkpoint: Path) -> CNNEncoder:
    """The checkpoint's encoder rebuilt by hand (tiny_pair: 32 electrodes, 5 bands, default widths)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    encoder = CNNEncoder(32, 5)
    encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")})
    return encoder.eval()


def test_folder_holds_safetensors_json_and_a_card_and_no_pickle(folder: Path) -> None:
    from safetensors import safe_open

    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    for path in folder.iterdir():
        head = path.read_bytes()[:4]
        assert not head.startswith(b"\x80"), f"{path.name} starts like a pickle"
        assert head != b"PK\x03\x04", f"{path.name} is a zip (torch.save's format)"
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert "features.0.weight" in set(f.keys())
    card = (folder / "README.md").read_text()
    assert "licence" in card.lower() and "synthetic" in card and "transfer_results.md" in card


def test_config_records_architecture_montage_and_the_source_training_statistics(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder"] == {
        "class_path": "scmm_lightning.model.CNNEncoder",
        "init_args": {"num_channels": 32, "num_bands": 5, "widths": [32, 64, 128], "kernel_size": 8},
    }
    text = TINY_PAIR.read_text()
    names = text.split("channels: [")[1].split("]")[0].split(", ")
    assert config["input"]["electrodes"] == names and config["input"]["num_bands"] == 5
    # independently: the source corpus regenerated from its spec, electrodes selected, min/max of every window
    # (split none: all windows train); minmax stores shift = min, scale = max - min
    spec = SyntheticCorpusSpec(num_classes=3, num_subjects=3, trials_per_session=6, windows_per_trial=12, seed=0)
    from scmm_lightning.corpora.synthetic import default_montage

    montage = default_montage(62)
    features, meta = generate_synthetic_corpus(montage, spec)
    x = features[:, select_channels(montage, names)].astype(np.float64)
    norm = config["input"]["normalization"]
    assert norm["kind"] == "minmax"
    np.testing.assert_allclose(norm["shift"], x.min(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm["scale"], x.max(0) - x.min(0), rtol=1e-6, atol=1e-6)
    assert config["input"]["subjects"] == 3 and config["input"]["windows"] == len(x)
    pre = config["pretraining"]
    assert pre["method"] == "scmm_lightning.tasks.SCMMPretraining" and pre["hyper_parameters"]["lr"] == 0.003
    assert pre["seed"] == 0 and pre["epochs"] == 1 and config["package"]["scmm_lightning"]


def test_load_encoder_in_a_process_without_lightning_is_bitwise_the_checkpoint(
    folder: Path, checkpoint: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(64, 32, 5)).astype(np.float32)
    np.save(tmp_path / "windows.npy", windows)
    code = (
        "import sys, numpy as np, torch\n"
        "import scmm_lightning\n"
        "import scmm_lightning.cli.export  # the export command too reads checkpoints without Lightning\n"
        f"enc = scmm_lightning.load_encoder({str(folder)!r})\n"
        f"x = torch.from_numpy(np.load({str(tmp_path / 'windows.npy')!r}))\n"
        "assert not enc.training and isinstance(enc, torch.nn.Module)\n"
        f"np.save({str(tmp_path / 'h.npy')!r}, enc(x).detach().numpy())\n"
        f"np.save({str(tmp_path / 'embed.npy')!r}, enc.embed(x).numpy())\n"
        "print(sorted(m for m in sys.modules if m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"  # Lightning never imported
    reference = checkpoint_encoder(checkpoint)
    with torch.no_grad():
        expected = reference(torch.from_numpy(windows)).numpy()
        norm = json.loads((folder / "config.json").read_text())["input"]["normalization"]
        shift, scale = np.asarray(norm["shift"], np.float32), np.asarray(norm["scale"], np.float32)
        expected_embed = reference(torch.from_numpy((windows - shift) / scale)).numpy()
    assert np.array_equal(np.load(tmp_path / "h.npy"), expected)  # bitwise
    assert np.array_equal(np.load(tmp_path / "embed.npy"), expected_embed)


def test_embed_checks_the_input_shape(folder: Path) -> None:
    import scmm_lightning

    enc = scmm_lightning.load_encoder(folder)
    with pytest.raises(ValueError, match=r"\(N, 32, 5\)"):
        enc.embed(np.zeros((4, 31, 5), np.float32))


def test_foreign_class_and_mismatched_weights_are_refused_naming_the_file(folder: Path, tmp_path: Path) -> None:
    from scmm_lightning.model.pretrained import EncoderFolderError, load_encoder

    foreign = tmp_path / "foreign"
    shutil.copytree(folder, foreign)
    config = json.loads((foreign / "config.json").read_text())
    config["encoder"] = {"class_path": "torch.nn.Identity", "init_args": {}}
    (foreign / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderFolderError, match="allow_foreign_encoder") as err:
        load_encoder(foreign)
    assert str(foreign / "config.json") in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(EncoderFolderError, match="weights do not match") as err:  # allowed: then its weights differ
        load_encoder(foreign, allow_foreign_encoder=True)
    assert str(foreign / "model.safetensors") in str(err.value) and "\n" not in str(err.value)

    narrow = tmp_path / "narrow"
    shutil.copytree(folder, narrow)
    config = json.loads((narrow / "config.json").read_text())
    config["encoder"]["init_args"]["widths"] = [16, 32, 64]
    (narrow / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderFolderError, match=r"model\.safetensors: weights do not match .*shapes"):
        load_encoder(narrow)


def test_export_never_overwrites_without_asking(checkpoint: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "enc"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = [*COMMAND, "export", "--ckpt_path", str(checkpoint), "--out", str(out)]
    assert in_process(args).returncode == 0
    again = in_process(args)
    assert again.returncode == 2 and "already holds" in error_lines(again.stderr)[0]
    assert in_process([*args, "--overwrite"]).returncode == 0
    assert (out / "notes.txt").read_text() == "mine"  # other files untouched
    assert (out / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_pretrained_option_starts_from_the_folder_and_checks_the_montage(
    folder: Path, tiny_config: Path, tmp_path: Path
) -> None:
    from scmm_lightning.cli.lightning_cli import build_cli

    cli = build_cli(["--config", str(TINY_PAIR), "--model.init_args.pretrained", str(folder)], run=False)
    loaded = CNNEncoder(32, 5)
    from safetensors.torch import load_file

    loaded.load_state_dict(load_file(folder / "model.safetensors"))
    for key, value in loaded.state_dict().items():
        assert torch.equal(cli.model.encoder.state_dict()[key], value), key
    fresh = cli.model.build_encoder()  # the random-init control: same architecture, new weights
    assert type(fresh) is CNNEncoder and fresh.widths == (32, 64, 128)
    assert not torch.equal(fresh.features[0].weight, loaded.features[0].weight)
    # tiny.yaml pre-trains on 62 electrodes: the folder takes 32 in DEAP's order
    bad = in_process(
        [*COMMAND, "fit", "--config", str(tiny_config), "--model.init_args.pretrained", str(folder),
         "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"]
    )  # fmt: skip
    lines = error_lines(bad.stderr)
    assert bad.returncode == 2 and len(lines) == 1 and "channels: [FP1, AF3" in lines[0], bad.stderr[-1500:]


def test_transfer_encoder_on_another_corpus_writes_the_results(folder: Path, deap_root: Path, tmp_path: Path) -> None:
    """An encoder pre-trained on the synthetic pair, evaluated on the DEAP fixture (32 electrodes,
    DEAP's order) through its real reader: the usual result files, every method and subject."""
    config = tmp_path / "deap.yaml"
    config.write_text(
        f"""seed_everything: 0
trainer:
  accelerator: cpu
  enable_progress_bar: false
  callbacks:
    - class_path: scmm_lightning.callbacks.CrossCorpusTransfer
      init_args: {{subjects: [1, 2], finetune: {{steps: 4, eval_every: 2, folds: 2, batch_size: 32}}}}
data:
  class_path: scmm_lightning.datamodules.DeapDataModule
  init_args: {{root: {deap_root}, cache_dir: {tmp_path / "cache"}, split: {{kind: trial, test_trials_per_class: 2}}}}
"""
    )
    out = tmp_path / "results"
    done = in_process([*COMMAND, "transfer", "--encoder", str(folder), "--config", str(config), "--out_dir", str(out)])
    assert done.returncode == 0, done.stderr[-2000:]
    names = {p.name for p in out.iterdir()}
    assert {"transfer_results.csv", "transfer_results.md", "transfer_results_summary.json"} <= names
    import csv

    rows = list(csv.DictReader((out / "transfer_results.csv").open()))
    assert {r["method"] for r in rows} == {"pretrained", "random_init", "raw_features"}
    subjects = {r["subject"] for r in rows}
    assert subjects == {"1", "2"} and len(rows) == 3 * 2
    # the random-choice gap (best - mean test balanced accuracy over checkpoints; by hand in
    # test_selection.py) is written beside the selection gap: a best is never below a mean
    assert all(float(r["random_choice_gap"]) >= 0 for r in rows), rows


def test_transfer_encoder_names_the_electrodes_a_target_lacks(folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(
        "data:\n  class_path: scmm_lightning.datamodules.SyntheticEEGDataModule\n"
        "  init_args: {num_channels: 16, num_subjects: 2, trials_per_session: 6, windows_per_trial: 4, "
        "split: {kind: trial, train_trials: 4}}\n"
    )
    bad = in_process(
        [*COMMAND, "transfer", "--encoder", str(folder), "--config", str(config), "--out_dir", str(tmp_path / "o")]
    )
    lines = error_lines(bad.stderr)
    assert bad.returncode == 2 and len(lines) == 1, bad.stderr[-1500:]
    assert "lacks electrodes ['FC1'" in lines[0] and str(folder) in lines[0]
    assert not (tmp_path / "o").exists()


def test_hub_mixin_reads_and_writes_the_same_folder(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    import scmm_lightning
    from scmm_lightning.model.hub import HubEncoder

    hub = HubEncoder.from_pretrained(str(folder))  # a local folder: no network
    x = torch.randn(8, 32, 5)
    plain = scmm_lightning.load_encoder(folder)
    assert torch.equal(hub.embed(x), plain.embed(x))
    saved = tmp_path / "saved"
    hub.save_pretrained(saved)
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (saved / "config.json").read_text() == (folder / "config.json").read_text()
    assert torch.equal(scmm_lightning.load_encoder(saved)(x), plain(x))
