from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scmm_lightning.cli.reproduce import main

ROOT = Path(__file__).resolve().parents[1]


def test_missing_corpus_stops_at_once_naming_the_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--data_root", str(tmp_path), "--configs", "experiments/seed_to_deap_valence.yaml"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "DEAP") in err and str(tmp_path / "SEED") in err


def test_make_target_without_data_root_fails_fast(tmp_path: Path) -> None:
    out = subprocess.run(
        ["make", "reproduce-seed2deap", f"DATA_ROOT={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "missing corpus directories" in out.stderr


def test_reproduce_runs_seeds_and_writes_one_table(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCMM_CACHE_DIR", str(tmp_path / "cache"))
    code = main(
        [
            "--data_root",
            str(data_root),
            "--seeds",
            "0",
            "1",
            "--configs",
            "experiments/seed_to_deap_valence.yaml",
            "--out",
            str(tmp_path / "out"),
            "--extra",
            "--trainer.fast_dev_run",
            "true",
            "--data.init_args.source.init_args.batch_size",
            "32",
        ]
    )
    assert code == 0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "seed_to_deap_valence" in summary and "| pretrained |" in summary and "| random_init |" in summary
    # quick mode: 2 target subjects x 2 seeds
    assert "| 4 |" in summary
