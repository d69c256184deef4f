from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import epoch_losses, in_process, run_fit

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "scmm_lightning"]


def test_two_epochs_decrease_the_loss_and_write_a_checkpoint(tiny_config: Path, tmp_path: Path) -> None:
    run_fit(tiny_config, tmp_path)
    losses = epoch_losses(tmp_path)
    assert len(losses) == 2
    assert losses[1] < losses[0]
    assert list(tmp_path.rglob("last.ckpt"))


def test_same_seed_same_losses(tiny_config: Path, tmp_path: Path) -> None:
    a = epoch_losses(run_fit(tiny_config, tmp_path / "a"))
    b = epoch_losses(run_fit(tiny_config, tmp_path / "b"))
    assert a == b


def test_print_config_round_trips(tiny_config: Path, tmp_path: Path) -> None:
    done = in_process(
        [*COMMAND, "fit", "--config", str(tiny_config), "--model.init_args.temperature", "0.25", "--print_config"]
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    printed = yaml.safe_load(out)
    assert printed["model"]["class_path"] == "scmm_lightning.tasks.SCMMPretraining"
    assert printed["model"]["init_args"]["temperature"] == 0.25
    assert printed["data"]["init_args"]["batch_size"] == 32
    dumped = tmp_path / "printed.yaml"
    dumped.write_text(out)
    again = in_process([*COMMAND, "fit", "--config", str(dumped), "--print_config"]).stdout
    assert yaml.safe_load(again) == printed


def test_help_lists_model_and_data_options() -> None:
    out = in_process([*COMMAND, "fit", "--help"]).stdout
    assert "--model" in out and "--data" in out and "--config" in out


@pytest.mark.parametrize("config", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_experiment_config_runs(config: Path, tmp_path: Path, corpora_env: Path) -> None:
    """Smoke test of every YAML under experiments/ against the fixture corpora: one pre-training
    batch, the linear probe, and the transfer protocol in its quick form (1 epoch, 2 subjects)."""
    extra = []
    if "CrossCorpusDataModule" in config.read_text():
        extra = ["--data.init_args.source.init_args.batch_size", "32"]
    elif "BidsDataModule" in config.read_text():  # the fixture's 2 training subjects hold 48 windows
        extra = ["--data.init_args.batch_size", "16"]
    if config.name == "synthetic.yaml":  # the demo, as a user runs it: its whole output is checked
        assert_only_actionable_warnings(config, tmp_path)
    else:
        run_fit(config, tmp_path, "--trainer.fast_dev_run", "true", *extra)
    assert list(tmp_path.rglob("transfer_results.csv"))


def assert_only_actionable_warnings(config: Path, out: Path) -> None:
    """``fit`` of the demo config in a fresh interpreter (no pytest warning filters): every warning
    it prints names an option to change (``init_args...`` / ``--...``); no third-party noise a user
    cannot act on (Lightning's tips, its pytree ``LeafSpec`` deprecation, the "args and command line"
    notice, DataLoader worker advice for in-memory tensors)."""
    done = subprocess.run(
        [sys.executable, "-m", "scmm_lightning", "fit", "--config", str(config), "--trainer.fast_dev_run", "true",
         "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(out),
         "--trainer.logger.init_args.save_dir", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    warned = [line for line in done.stderr.splitlines() if re.match(r"^\S+\.py:\d+: ", line)]
    unactionable = [line for line in warned if "init_args." not in line and " --" not in line]
    assert not unactionable, unactionable
    for noise in ("Tip:", "LeafSpec", "LightningCLI's args", "does not have many workers", "Traceback"):
        assert noise not in done.stderr, noise


def test_bad_setting_names_the_option(tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        run_fit(tiny_config, tmp_path, "--model.init_args.mask_mode", "blocks")
    assert "mask_mode" in capsys.readouterr().err


def test_encoder_is_replaceable_by_class_path(tiny_config: Path) -> None:
    from scmm_lightning.cli.lightning_cli import build_cli

    cli = build_cli(
        [
            "--config",
            str(tiny_config),
            "--model.init_args.encoder",
            "scmm_lightning.model.CNNEncoder",
            "--model.init_args.encoder.init_args.widths",
            "[16, 32, 64]",
        ],
        run=False,
    )
    assert cli.model.encoder.features[0].out_channels == 16
    assert cli.model.encoder.out_features == 64 * 3 and cli.model.projector.net[0].in_features == 64 * 3


def test_prepare_starts_without_lightning_or_torch(tmp_path: Path) -> None:
    """`prepare` only reads files and writes a cache: importing Lightning (~3 s) is not its business."""
    code = (
        "import sys\n"
        "from scmm_lightning.cli import main\n"
        "try:\n"
        f"    main(['prepare', '--corpus', 'seed', '--root', {str(tmp_path / 'missing')!r}])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 2, e.code\n"
        "print(sorted(m for m in ('lightning', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_pass_through_arguments_are_listed_and_documented() -> None:
    """Shared arguments are declared once (WindowDataModule, PretrainingTask) and passed through
    **kwargs: the CLI still lists each one, with its documentation, for every leaf."""
    base = [*COMMAND, "fit"]
    data_help = in_process([*base, "--data.help", "scmm_lightning.datamodules.DeapDataModule"]).stdout
    for option, doc in [
        ("label_dimension", "valence, arousal"),  # the leaf's own
        ("root", "corpus root"),  # EEGCorpusDataModule's
        ("subjects", "subject ids to keep"),  # WindowDataModule's
        ("normalization", "training split only"),
        ("shuffle_seed", "epoch-wise training order"),
    ]:
        assert f"--data.{option}" in data_help and doc in data_help, option
    model_help = in_process([*base, "--model.help", "scmm_lightning.tasks.HardContrastivePretraining"]).stdout
    for option, doc in [
        ("normalize_embeddings", "cosine"),
        ("temperature", "contrastive softmax"),
        ("mask_ratio", "fraction of entries"),
        ("lr", "Adam learning rate"),
    ]:
        assert f"--model.{option}" in model_help and doc in model_help, option
