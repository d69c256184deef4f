from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


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
