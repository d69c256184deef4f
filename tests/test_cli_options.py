"""Options are written in full: no entry point completes a prefix (``real_eeg.py --seed 5`` had run
five seeds), and the refusal names the option meant (``scmm_lightning/cli/options.py``)."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import pytest
from cli_helpers import built_parser, in_process, script_parser

from scmm_lightning.cli import main
from scmm_lightning.cli.options import unknown_option_hint

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if "ArgumentParser" in p.read_text())
CLI_MODULES = ("export", "reproduce", "ablations")


def refusals(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """For every long option whose name minus its last letter is not an option too: that prefix, and
    the error message the parser gives for it (required options given, so the prefix is the only fault)."""
    required = []
    for action in parser._actions:
        if action.required and action.option_strings:
            required += [action.option_strings[0], "1"]
    out = []
    for option in sorted(parser._option_string_actions):
        prefix = option[:-1]
        if not option.startswith("--") or len(prefix) < 3 or prefix in parser._option_string_actions:
            continue
        _, extras = parser.parse_known_args([*required, f"{prefix}=1"])
        assert extras == [f"{prefix}=1"], f"{parser.prog}: {prefix} was taken as {option}"
        message = io.StringIO()
        with contextlib.redirect_stderr(message), pytest.raises(SystemExit):
            parser.parse_args([*required, f"{prefix}=1"])
        out.append((option, message.getvalue()))
    return out


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_benchmark_script_completes_an_abbreviated_option(script: Path) -> None:
    found = refusals(script_parser(script))
    assert found, f"{script.name}: no long option checked"
    for option, message in found:
        assert f"did you mean {option}" in message or f"or {option}" in message, message


@pytest.mark.parametrize("module", CLI_MODULES)
def test_no_subcommand_completes_an_abbreviated_option(module: str) -> None:
    found = refusals(built_parser(lambda: main([module])))
    assert found
    for option, message in found:
        assert option in message and "not abbreviated" in message, message


def _call(args: list[str]) -> tuple[int, str]:
    done = in_process(["python", "-m", "scmm_lightning", *args])
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        (["--trainer.max_epoch", "1"], "--trainer.max_epochs"),  # LightningArgumentParser took it as max_epochs
        (["--seed", "3"], "--seed_everything"),
        (["--trainer.max_epohcs", "1"], "--trainer.max_epochs"),  # a misspelling: the closest names
    ],
)
def test_lightning_cli_refuses_a_prefix_and_names_the_option(given: list[str], meant: str) -> None:
    config = str(ROOT / "experiments" / "synthetic.yaml")
    code, text = _call(["fit", "--config", config, *given, "--print_config"])
    assert code == 2 and f"did you mean {meant}" in text, text
    assert "Traceback" not in text
    code, text = _call(["fit", "--config", config, meant, given[1], "--print_config"])
    assert code == 0, text


def test_prepare_names_a_reader_option_as_the_user_writes_it(tmp_path: Path) -> None:
    code, text = _call(["prepare", "--corpus", "seed", "--roo", str(tmp_path)])
    assert code == 2 and "--roo: did you mean --root?" in text, text
    assert "--reader." not in text


def test_the_hint_names_prefixes_then_close_spellings_and_leaves_other_errors() -> None:
    options = ["--seeds", "--seed_list", "--alpha", "--beta", "-h", "--help"]
    msg = "unrecognized arguments: --seed=2 --alpah 3 positional --xyz"
    hint = unknown_option_hint(msg, options)
    assert hint.startswith(msg)
    assert "--seed: did you mean --seed_list or --seeds? (options are written in full, not abbreviated)" in hint
    assert "--alpah: did you mean --alpha?" in hint and "--alpah: did you mean --alpha? (" not in hint
    assert "--xyz" not in hint[len(msg) :] and "positional" not in hint[len(msg) :]
    other = "argument --seeds: invalid int value: 'x'"
    assert unknown_option_hint(other, options) == other


@pytest.mark.parametrize(
    ("given", "owner", "takes"),
    [
        ("--model.temperatur", "--model", "--model.temperature"),
        ("--model.init_args.temperatur", "--model", "--model.temperature"),
        ("--data.init_args.target.init_args.batch_siz", "--data.init_args.target", "--target.batch_size"),
    ],
)
def test_an_unknown_argument_of_a_chosen_class_is_named_as_given(given: str, owner: str, takes: str) -> None:
    """jsonargparse says only "Option 'temperatur' is not accepted"; the error names the option as
    written and a command listing the class's arguments, and that command works."""
    config = str(ROOT / "experiments" / "synthetic.yaml")
    code, text = _call(["fit", "--config", config, given, "1"])
    assert code == 2, text
    assert f"error: option {given}: the class chosen for {owner[2:]} takes no argument" in text, text
    assert f"{owner}.help CLASS_PATH" in text
    target = (
        "scmm_lightning.datamodules.SyntheticEEGDataModule"
        if "data" in owner
        else "scmm_lightning.tasks.SCMMPretraining"
    )
    code, text = _call(["fit", "--config", config, f"{owner}.help", target])
    assert code == 0 and takes in text, text[-800:]


def test_an_unknown_argument_given_in_two_places_names_both() -> None:
    """jsonargparse does not say which ``batch_size`` it refused: naming one would be a guess."""
    config = str(ROOT / "experiments" / "synthetic.yaml")
    good, bad = "--data.init_args.source.init_args.batch_size", "--model.batch_size"
    code, text = _call(["fit", "--config", config, good, "64", bad, "3"])
    assert code == 2, text
    assert f"one of {good}, {bad}: the class chosen there takes no such argument" in text, text
