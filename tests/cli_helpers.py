"""Running the real command line from tests (one helper, shared by every test module)."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable
from pathlib import Path

from scmm_lightning.cli import main

ROOT = Path(__file__).resolve().parents[1]
LIGHTNING_INFO = ("Seed set to", "GPU available", "TPU available", "HPU available", "Running in `fast_dev_run`")


def error_lines(stderr: str) -> list[str]:
    """What a failing command printed beyond Lightning's start-up lines ("Seed set to 0", the
    accelerators found): its error, which must be short and never a traceback."""
    assert "Traceback" not in stderr, stderr[-1500:]
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(LIGHTNING_INFO)]


def run_fit(config: Path | list[Path], out_dir: Path, *extra: str) -> Path:
    """``python -m scmm_lightning fit --config CONFIG... [extra]`` with logs and checkpoints under ``out_dir``."""
    configs = config if isinstance(config, list) else [config]
    args = ["fit"]
    for c in configs:
        args += ["--config", str(c)]
    main(
        [*args, "--trainer.logger.init_args.save_dir", str(out_dir), "--trainer.default_root_dir", str(out_dir), *extra]
    )
    return out_dir


def epoch_losses(log_root: Path) -> list[float]:
    """``train/loss_epoch`` of every epoch from the run's metrics.csv."""
    (metrics,) = list(log_root.rglob("metrics.csv"))
    rows = list(csv.DictReader(metrics.open()))
    return [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]


def in_process(command: list[str]) -> subprocess.CompletedProcess:
    """``python -m scmm_lightning ...`` run in this process (no interpreter start: ~8 s less per
    call), as a CompletedProcess: its exit status and what it wrote to stdout and stderr (a SystemExit
    message included, as the interpreter would print it)."""
    import contextlib
    import io

    from scmm_lightning.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(command[3:])
        except SystemExit as exit_:
            if isinstance(exit_.code, str):
                print(exit_.code, file=err)
                code = 1
            else:
                code = exit_.code or 0
    return subprocess.CompletedProcess(command, code, out.getvalue(), err.getvalue())


class _Built(BaseException):  # not an Exception: no script's `except Exception` may swallow it
    pass


def built_parser(run: Callable[[], object]):  # noqa: ANN201
    """The ``argparse`` parser ``run()`` builds, caught at its ``parse_args`` call, so nothing after
    it runs. Patches its own scope only (a test's ``monkeypatch`` may hold fixtures' environment)."""
    import argparse
    import contextlib
    import io

    import pytest

    def stop(self, args=None, namespace=None):  # noqa: ANN001, ANN202
        raise _Built(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", stop)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                run()
        except _Built as built:
            return built.args[0]
    raise AssertionError(f"{run} returned without parsing its arguments")


def script_parser(script: Path):  # noqa: ANN201
    """The parser of ``python benchmarks/<script>.py``: :func:`built_parser` over the script run in
    this process as ``__main__``, its folder first on ``sys.path`` as ``python script`` has it."""
    import runpy
    import sys

    import pytest

    def run() -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", [str(script)])
            patch.setattr(sys, "path", [str(script.parent), *sys.path])
            runpy.run_path(str(script), run_name="__main__")

    return built_parser(run)
