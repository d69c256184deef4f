"""The README is a contract: every documented command (README.md's shell fences and inline code,
the ``experiments/*.yaml`` comments) runs on the fixture corpora / the synthetic pair with a short
schedule, or, where it needs licensed data or a long run, parses: ``--print_config`` resolves, every
file it names exists and every option it names is one the command accepts. A README edit that
breaks a command fails here."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import script_parser
from readme_commands import Command, config_comment_commands, parse, readme_commands

from scmm_lightning.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    *readme_commands(),
    *readme_commands(ROOT / "benchmarks" / "REAL_EEG_HISTORY.md"),
    *readme_commands(ROOT / "benchmarks" / "HISTORY.md"),
    *config_comment_commands(),
]
# run to the end (short schedule), keyed by the command's words; everything else is parsed
SHORT_RUNS = {
    ("fit", "--config", "experiments/synthetic.yaml"): ["--trainer.fast_dev_run", "true"],
    # the documented single-corpus SEED command: one epoch (the 2-subject fixture has 134 windows)
    (
        "fit", "--config", "experiments/synthetic.yaml", "--data", "scmm_lightning.datamodules.SeedDataModule",
        "--data.split.kind", "none", "--data.sessions", "[1]",
    ): ["--trainer.max_epochs", "1", "--data.batch_size", "64"],
}  # fmt: skip


def substitute(words: tuple[str, ...], data_root: Path, run: dict[str, Path] | None = None) -> list[str]:
    """Placeholders of the docs -> the fixture corpora (and a real run's files)."""
    out = []
    for w in words:
        w = w.replace("$SCMM_DATA_ROOT", str(data_root)).replace("/data/eeg", str(data_root))
        w = re.sub(r"^BIDS_DIR$", str(data_root / "BIDS"), w)
        w = re.sub(r"^DIR(?=/|$)", str(data_root / "RECORDINGS"), w)
        w = re.sub(r"(?<==)DIR(?=/|$)", str(data_root / "RECORDINGS"), w)
        w = w.replace("<method>", "scmm")
        if run is not None:
            w = {
                "RUN.yaml": str(run["config"]),
                ".../last.ckpt": str(run["ckpt"]),
                "RUN/checkpoints/last.ckpt": str(run["ckpt"]),
                "ENCODER_DIR": str(run["encoder"]),
            }.get(w, w)
        out.append(w)
    return out


def call(args: list[str]) -> tuple[int, str]:
    """``python -m scmm_lightning ARGS`` in this process: (exit status, stdout + stderr)."""
    buffer = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            main(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if isinstance(stop.code, str):
                buffer.write(stop.code)
    return code, buffer.getvalue()


def options_of(words: list[str]) -> set[str]:
    """The ``--options`` a subcommand's ``--help`` lists (for prepare: the chosen reader's)."""
    head = words[:1] + (words[words.index("--corpus") : words.index("--corpus") + 2] if "--corpus" in words else [])
    code, text = call([*head, "--help"])
    assert code == 0, text
    return set(re.findall(r"--[A-Za-z_][\w.\-]*", text))


def assert_options_exist(words: list[str], where: str) -> None:
    known = options_of(words)
    named = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    unknown = sorted(o for o in named if o not in known and not any(k.startswith(o + ".") for k in known))
    assert not unknown, f"{where}: options {unknown} are not accepted by `{words[0]}`"


def assert_files_exist(words: list[str], where: str) -> None:
    for flag, value in zip(words, words[1:]):
        if flag in ("--config", "--setting", "--configs", "--table"):
            assert (ROOT / value).exists() or Path(value).exists(), f"{where}: {flag} {value} does not exist"


@pytest.fixture(scope="module")
def seed_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The README's single-corpus SEED command, run to the end: its config and checkpoint."""
    out = tmp_path_factory.mktemp("readme_seed_run")
    import os

    saved = {k: os.environ.get(k) for k in ("SCMM_DATA_ROOT", "SCMM_CACHE_DIR")}
    os.environ["SCMM_DATA_ROOT"] = str(data_root)
    os.environ["SCMM_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "shared_cache")
    try:
        (words,) = [c.words for c in COMMANDS if c.words in SHORT_RUNS and "--data" in c.words]
        args = [*substitute(words, data_root), *SHORT_RUNS[words], *_run_dirs(out)]
        code, text = call(args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code == 0, text
    (ckpt,) = out.rglob("last.ckpt")
    (config,) = out.rglob("config.yaml")
    code, exported = call(["export", "--ckpt_path", str(ckpt), "--out", str(out / "encoder")])
    assert code == 0, exported
    return {"ckpt": ckpt, "config": config, "output": out, "text": text, "encoder": out / "encoder"}


def _run_dirs(out: Path) -> list[str]:
    return ["--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out)]


def benchmark_arguments(words: list[str] | tuple[str, ...]) -> argparse.Namespace:
    """``python benchmarks/<script>.py ARGS`` parsed by the script's own parser
    (:func:`cli_helpers.script_parser`: nothing else of it runs): the namespace. What fails there
    fails here (an AssertionError with argparse's message): a missing script, an option it does not
    take, a value its ``type`` refuses (real_eeg.py's ``--protocols`` and ``--methods`` check theirs)."""
    script = ROOT / words[0]
    assert script.is_file(), f"{words[0]} does not exist"
    parser = script_parser(script)
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(list(words[1:]))
    except SystemExit:
        raise AssertionError(f"{' '.join(words)}: {errors.getvalue().strip()[-1500:]}") from None


def check_make(cmd: Command, data_root: Path) -> None:
    args = substitute(cmd.words, data_root)
    done = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd}: `make -n` failed:\n{done.stderr}"
    for line in done.stdout.splitlines():  # the commands the target would run must parse too
        # `$(PYTHON)` may be a path (make test PYTHON=.venv/bin/python passes it down)
        inner = parse(re.sub(r"^\S*python3?(?=\s)", "python", line.strip().lstrip("@")), cmd.source)
        if inner is not None and inner.program == "scmm_lightning":
            words = [w for w in inner.words if w]
            assert_options_exist(words, f"{cmd} -> {line.strip()}")
            assert_files_exist(words, f"{cmd} -> {line.strip()}")
        elif inner is not None and inner.program == "benchmark":
            benchmark_arguments(inner.words)


def test_the_docs_hold_commands_of_every_kind() -> None:
    programs = {(c.program, c.words[0]) for c in COMMANDS}
    for expected in (("scmm_lightning", "fit"), ("scmm_lightning", "prepare"), ("scmm_lightning", "transfer"),
                     ("scmm_lightning", "export"),
                     ("scmm_lightning", "ablations"), ("make", "demo"), ("make", "reproduce-seed2deap"),
                     ("benchmark", "benchmarks/real_eeg.py"), ("benchmark", "benchmarks/evaluation.py")):  # fmt: skip
        assert expected in programs
    assert len(SHORT_RUNS) == sum(c.words in SHORT_RUNS for c in {c.words: c for c in COMMANDS}.values())


@pytest.mark.parametrize("cmd", COMMANDS, ids=str)
def test_documented_command(cmd: Command, corpora_env: Path, seed_run: dict, tmp_path: Path) -> None:
    data_root = corpora_env
    if cmd.program == "make":
        check_make(cmd, data_root)
        return
    if cmd.program == "benchmark":
        benchmark_arguments(cmd.words)
        return
    words = substitute(cmd.words, data_root, seed_run)
    where = str(cmd)
    if "..." in words:  # a schematic form (`fit --config ... --ckpt_path runs/.../last.ckpt`)
        assert_options_exist([w for w in words if w != "..." and "..." not in w], where)
        return
    assert_files_exist(words, where)
    if "--help" in words or "-h" in words:
        code, text = call(words)
        assert code == 0 and "--" in text, f"{where}:\n{text[-2000:]}"
        return
    sub = words[0]
    if sub == "prepare":
        code, text = call(words)
        assert code == 0 and "cache:" in text, f"{where}:\n{text[-2000:]}"
    elif sub == "fit" and cmd.words in SHORT_RUNS:
        if "--data" in cmd.words:  # run once by the seed_run fixture
            assert "run finished" in seed_run["text"], seed_run["text"][-2000:]
            return
        code, text = call([*words, *SHORT_RUNS[cmd.words], *_run_dirs(tmp_path)])
        assert code == 0 and "run finished" in text, f"{where}:\n{text[-3000:]}"
    elif sub == "export":  # run, into a fresh folder (ENCODER_DIR is the fixture's own export)
        words[words.index("--out") + 1] = str(tmp_path / "encoder")
        code, text = call(words)
        assert code == 0 and "exported" in text and (tmp_path / "encoder" / "model.safetensors").is_file(), text
    elif sub in ("fit", "transfer"):
        printed = words if "--print_config" in words else [*words, "--print_config"]
        code, text = call(printed)
        assert code == 0 and "model:" in text, f"{where}: --print_config failed:\n{text[-3000:]}"
    else:  # reproduce / ablations: long multi-run drivers
        assert_options_exist(words, where)
        for method in words[words.index("--methods") + 1 :] if "--methods" in words else []:
            if method.startswith("--"):
                break
            assert (ROOT / "experiments" / "methods" / f"{method}.yaml").exists(), f"{where}: no method {method}"


def test_a_broken_command_fails_the_check(corpora_env: Path) -> None:
    """The checks above can fail: a misspelt option, a missing config, an unknown make target, a
    benchmark's misspelt option, protocol or method."""
    code, _ = call(["fit", "--config", "experiments/synthetic.yaml", "--model.init_args.mask_ratioo", "0.6",
                    "--print_config"])  # fmt: skip
    assert code != 0
    with pytest.raises(AssertionError, match="does not exist"):
        assert_files_exist(["fit", "--config", "experiments/no_such.yaml"], "x")
    with pytest.raises(AssertionError, match="not accepted"):
        assert_options_exist(["ablations", "--method", "scmm"], "x")
    with pytest.raises(AssertionError, match="make -n"):
        check_make(Command("x", (), ("reproduce-seed2dep",), "make"), corpora_env)
    for words, message in [
        (["benchmarks/real_eeg.py", "--protocols", "lpft/cv/cv_model=ensembel"], "cv_model='ensembel'"),
        (["benchmarks/real_eeg.py", "--protocols", "lpft/fixd"], "selection one of"),
        (["benchmarks/real_eeg.py", "--methods", "scmmm"], "no experiments/methods/scmmm.yaml"),
        (["benchmarks/finetune_recipes.py", "--protocols", "lpft/cv/stepz=60"], "'stepz=60' is not field=value"),
        (["benchmarks/evaluation.py", "--workloads", "finetun"], "invalid choice"),
        (["benchmarks/real_eeg.py", "--methodss", "scmm"], "unrecognized arguments"),
        (["benchmarks/no_such.py"], "does not exist"),
    ]:
        with pytest.raises(AssertionError, match=re.escape(message)):
            benchmark_arguments(words)
    # and a good one parses to what it says
    args = benchmark_arguments(["benchmarks/real_eeg.py", "--seeds", "2", "--protocols", "lpft/cv/folds=9"])
    assert args.seeds == 2 and args.protocols == ["lpft/cv/folds=9"]
    assert os.environ["SCMM_DATA_ROOT"] == str(corpora_env)  # the fixture's environment outlives the parses


def test_the_installed_console_script_runs() -> None:
    """``scmm-lightning`` (pyproject's console script) must import and run, not only ``python -m``."""
    # the script of the environment under test first: one on PATH may belong to another Python
    # (a stale editable install in the base interpreter once pointed at a deleted clone)
    beside = Path(sys.executable).parent / "scmm-lightning"
    exe = str(beside) if beside.exists() else shutil.which("scmm-lightning") or str(beside)
    if not Path(exe).exists():
        pytest.skip("scmm-lightning is not installed (pip install -e .)")
    done = subprocess.run([exe, "fit", "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--model" in done.stdout and "--data" in done.stdout
