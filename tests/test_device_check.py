"""``benchmarks/device_check.sh``, the evaluation engines' GPU checks prepared for a lent device
(README, Performance), run small on the CPU: a session that gets a device has 15 minutes of it, so
every step must already work here (the gpu-marked tests skip without CUDA)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _last_json(log: str) -> dict:
    return json.loads(log.strip().splitlines()[-1])


def test_the_device_check_runs_every_step_small_on_the_cpu(tmp_path: Path) -> None:
    env = {
        **os.environ, "DEVICE": "cpu", "COMPARE_EPOCHS": "1", "FULL_EPOCHS": "2", "SUBJECTS": "3", "PROBE_SUBJECTS": "3",
        "PYTHON": sys.executable, "OUT": str(tmp_path),
    }  # fmt: skip
    done = subprocess.run(
        ["bash", "benchmarks/device_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    logs = {p.stem: p.read_text() for p in tmp_path.glob("*.log")}
    assert set(logs) == {"device", "gpu_tests", "compare", "full_length", "probe"}
    assert "skipped" in logs["gpu_tests"] and "failed" not in logs["gpu_tests"]
    compare, full = _last_json(logs["compare"]), _last_json(logs["full_length"])
    # loop vs batched on 3 subjects x 3 rows for 1 epoch: the same epochs and metrics, a ratio
    assert compare["same_results"] is True and compare["models"] == 9 and compare["epochs"] == 1
    assert compare["finetune_speedup"] > 0 and compare["differences"] == {"finetune loop vs batched": 0}
    assert compare["host_matmul_gflops"] > 0  # the host's product rate, which the ratio moves with
    # the batched engine alone for the full length: its time, no ratio and no comparison claimed
    assert full["same_results"] is None and full["epochs"] == 2 and "finetune_speedup" not in full
    assert "finetune_loop_1p_seconds" not in full and full["finetune_batched_1p_seconds"] > 0
    # one probe call (3 subjects), loop vs batched: the same L2 values and metrics
    probe = _last_json(logs["probe"])
    assert probe["same_results"] is True and probe["probe_speedup"] > 0 and probe["probe_subjects"] == 3
    assert probe["differences"] == {"probe loop vs batched": 0}


def test_the_device_check_runs_the_steps_it_is_told(tmp_path: Path) -> None:
    """``STEPS`` chooses the steps (the device identification always runs): here the probe call with
    the solver's precision forced to float32 (3 subjects) and LP-FT (2 subjects, 2 steps), with the
    protocol's IEEE float32 guard and without it, loop vs batched, the same L2, steps and metrics (on
    the CPU the guard changes no arithmetic; the protocol's encoders saw the settings it implies)."""
    env = {
        **os.environ, "DEVICE": "cpu", "STEPS": "probe_float32 lpft lpft_torch_default", "PROBE_SUBJECTS": "3", "LPFT_SUBJECTS": "2",
        "LPFT_STEPS": "2", "PYTHON": sys.executable, "OUT": str(tmp_path),
    }  # fmt: skip
    done = subprocess.run(
        ["bash", "benchmarks/device_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    logs = {p.stem: p.read_text() for p in tmp_path.glob("*.log")}
    assert set(logs) == {"device", "probe_float32", "lpft", "lpft_torch_default"}
    probe = _last_json(logs["probe_float32"])
    assert probe["probe_working_dtype"] == "float32" and probe["same_results"] is True and probe["probe_subjects"] == 3
    lpft, unguarded = _last_json(logs["lpft"]), _last_json(logs["lpft_torch_default"])
    assert lpft["same_results"] is True and lpft["lpft_speedup"] > 0 and lpft["lpft_subjects"] == 2
    assert unguarded["same_results"] is True and unguarded["lpft_subjects"] == 2
    assert (lpft["protocol_conv_precision"], unguarded["protocol_conv_precision"]) == ("ieee", "tf32")


def test_the_benchmark_solves_the_probe_in_the_precision_it_is_told(tmp_path: Path) -> None:
    """``--probe_precision float64`` reaches the spawned process that measures (on the CPU, whose own
    precision is float32): its ``probe_working_dtype`` is reported from there."""
    done = subprocess.run(
        [sys.executable, "benchmarks/evaluation.py", "--device", "cpu", "--workloads", "probe", "--engines", "batched",
         "--processes", "1", "--repeats", "1", "--probe_subjects", "2", "--probe_precision", "float64"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert _last_json(done.stdout)["probe_working_dtype"] == "float64"


def test_the_benchmark_reports_what_an_epoch_adds() -> None:
    """``--marginal_epochs``: both engines timed at 1 and at 3 epochs in the same run; the per-epoch
    ratio and the projections are the straight line through each engine's two medians, recomputed
    here from the seconds the JSON reports (rounded to 0.01 s there, hence the tolerance)."""
    done = subprocess.run(
        [sys.executable, "benchmarks/evaluation.py", "--device", "cpu", "--workloads", "finetune", "--engines", "loop",
         "batched", "--processes", "1", "--repeats", "1", "--subjects", "2", "--epochs", "1", "--marginal_epochs", "3",
         "--full_epochs", "101"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    out = _last_json(done.stdout)
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "evaluation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # by hand: 10 s at 2 epochs, 50 s at 10 -> 5 s an epoch, 10 + 498 x 5 s at 500
    assert bench.per_epoch_projection(10.0, 50.0, 2, 10, 500) == (5.0, 2500.0)
    added = {}
    for engine in ("loop", "batched"):
        short, long = out[f"finetune_{engine}_1p_seconds"], out[f"finetune_long_{engine}_1p_seconds"]
        added[engine] = (long - short) / 2
        assert abs(out[f"finetune_{engine}_per_epoch_seconds"] - added[engine]) < 0.006
        minutes = (short + 100 * added[engine]) / 60  # the 1-epoch call plus 100 more epochs
        assert abs(out[f"projected_minutes_{engine}_from_per_epoch"] - minutes) < 0.05 + 0.51 / 60
        scaled = short * 101 / 60  # the short call scaled, as before
        assert abs(out[f"projected_minutes_{engine}"] - scaled) < 0.05 + 0.005 * 101 / 60
    slack = 0.005  # each median rounded to 0.01 s: each epoch's cost within 0.005 s of the reported seconds'
    # by hand: a ratio only of two positive costs (a busy host once made the loop's 3-epoch call 0.96 s
    # faster than its 1-epoch call, and the benchmark reported -8.45x)
    assert (bench.epoch_ratio(5.0, 2.0), bench.epoch_ratio(-0.48, 0.055), bench.epoch_ratio(1.0, 0.0)) == (
        2.5,
        None,
        None,
    )
    speedup = out["finetune_per_epoch_speedup"]
    if speedup is None:
        assert min(added.values()) <= slack, (out, added)
    elif added["batched"] > 4 * slack:  # (a busy host can make the two calls' difference ~0: no bound to check then)
        corners = [(added["loop"] + a) / (added["batched"] + b) for a in (-slack, slack) for b in (-slack, slack)]
        assert min(corners) - 5e-4 <= speedup <= max(corners) + 5e-4, (out, added)
    assert out["same_results"] is True and out["differences"] == {
        "finetune loop vs batched": 0, "finetune at 3 epochs loop vs batched": 0
    }  # fmt: skip
    refused = subprocess.run(
        [sys.executable, "benchmarks/evaluation.py", "--epochs", "2", "--marginal_epochs", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "--marginal_epochs 2 must exceed --epochs 2" in refused.stderr
    ignored = subprocess.run(
        [sys.executable, "benchmarks/evaluation.py", "--workloads", "probe", "--marginal_epochs", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ignored.returncode == 2 and "add finetune to --workloads" in ignored.stderr
    unreported = subprocess.run(
        [sys.executable, "benchmarks/evaluation.py", "--device", "cpu", "--processes", "2", "--marginal_epochs", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert unreported.returncode == 2 and "add 1 to --processes" in unreported.stderr
