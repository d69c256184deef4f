from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per xdist worker (and its subprocesses): two workers of two threads each on two cores
    # spin against each other in OpenMP and ran several times slower than one worker
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def tiny_config() -> Path:
    return ROOT / "tests" / "configs" / "tiny.yaml"


def _load_generator(corpus: str):
    import importlib.util

    path = Path(__file__).resolve().parent / "data" / corpus / "generate.py"
    spec = importlib.util.spec_from_file_location(f"fixture_{corpus}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def seed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _load_generator("seed").write_seed(tmp_path_factory.mktemp("SEED"))


@pytest.fixture(scope="session")
def seed_iv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _load_generator("seed_iv").write_seed_iv(tmp_path_factory.mktemp("SEED_IV"))


@pytest.fixture(scope="session")
def deap_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _load_generator("deap").write_deap(tmp_path_factory.mktemp("DEAP"))


@pytest.fixture(scope="session")
def recordings_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("RECORDINGS")
    _load_generator("recordings").write_recordings(root)
    return root


@pytest.fixture(scope="session")
def bids_root(recordings_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recordings fixture written as an EEG BIDS dataset by mne-bids (BrainVision files)."""
    return _load_generator("bids").write_bids(tmp_path_factory.mktemp("BIDS"), recordings_root)


@pytest.fixture(scope="session")
def data_root(
    seed_root: Path,
    seed_iv_root: Path,
    deap_root: Path,
    recordings_root: Path,
    bids_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A $SCMM_DATA_ROOT holding the fixture corpora as SEED/, SEED_IV/, DEAP/, RECORDINGS/ and BIDS/."""
    root = tmp_path_factory.mktemp("data_root")
    for name, src in (
        ("SEED", seed_root),
        ("SEED_IV", seed_iv_root),
        ("DEAP", deap_root),
        ("RECORDINGS", recordings_root),
        ("BIDS", bids_root),
    ):
        (root / name).symlink_to(src, target_is_directory=True)
    return root


@pytest.fixture
def corpora_env(data_root: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SCMM_DATA_ROOT", str(data_root))
    monkeypatch.setenv("SCMM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "shared_cache"))
    return data_root
