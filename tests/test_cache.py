from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from scmm_lightning.cli.prepare import main as prepare_main
from scmm_lightning.corpora import SeedReader
from scmm_lightning.corpora.cache import build_cache, cache_path, load_cache


def test_build_then_load_round_trips(seed_root: Path, tmp_path: Path) -> None:
    reader = SeedReader(seed_root)
    path = build_cache(reader, tmp_path, progress=False)
    table = load_cache(path)
    recs = list(reader.sessions())
    np.testing.assert_array_equal(table.features, np.concatenate([r.features for r in recs]))
    np.testing.assert_array_equal(table.metadata["trial"], np.concatenate([r.trial for r in recs]))
    np.testing.assert_array_equal(
        table.metadata["session"], np.concatenate([np.full(len(r.trial), r.session) for r in recs])
    )
    assert table.channel_names[:3] == ("FP1", "FPZ", "FP2") and table.class_names == ("negative", "neutral", "positive")


def test_key_changes_with_parameters_and_files(seed_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "SEED"
    shutil.copytree(seed_root, root)
    a = cache_path(SeedReader(root), tmp_path)
    assert cache_path(SeedReader(root), tmp_path) == a
    assert cache_path(SeedReader(root, feature_key="de_movingAve"), tmp_path) != a
    f = root / "ExtractedFeatures" / "1_20131027.mat"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    b = cache_path(SeedReader(root), tmp_path)
    assert b != a
    # an existing entry is reused, not rebuilt
    build_cache(SeedReader(root), tmp_path, progress=False)
    reader = SeedReader(root)
    reader.sessions = lambda: (_ for _ in ()).throw(AssertionError("rebuilt"))  # type: ignore[method-assign]
    assert build_cache(reader, tmp_path, progress=False) == b


def test_crash_while_building_leaves_nothing(seed_root: Path, tmp_path: Path) -> None:
    reader = SeedReader(seed_root)
    real = reader.sessions

    def crashing():
        for i, rec in enumerate(real()):
            if i == 2:
                raise RuntimeError("disk full")
            yield rec

    reader.sessions = crashing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="disk full"):
        build_cache(reader, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cache_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "seed-x.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"seed-x\.h5.*delete it"):
        load_cache(bad)


def test_prepare_command_prints_summary(seed_iv_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        prepare_main(
            ["--corpus", "seed_iv", "--root", str(seed_iv_root), "--cache_dir", str(tmp_path), "--no_progress"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "subjects:  2" in out and "trials:    144" in out and "features:  (62, 5)" in out
    assert "neutral=" in out and "fear=" in out and str(tmp_path) in out
    assert prepare_main(["--corpus", "seed", "--root", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
