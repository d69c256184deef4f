"""``benchmarks/device_check.sh``, the evaluation engines' GPU checks prepared for a lent device
(README, Performance), run small on the CPU: a session that gets a device has 15 minutes of it, so
every step must already work here (the gpu-marked tests skip without CUDA)."""

from __future__ import annotations

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
