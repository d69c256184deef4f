"""Readers driven through fixture files in the official layouts."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from scmm_lightning.corpora import CorpusError, DeapReader, SeedIVReader, SeedReader
from scmm_lightning.corpora.de import differential_entropy
from scmm_lightning.corpora.safe_pickle import UnsafePickleError, load_numpy_pickle
from scmm_lightning.corpora.seed import SEED_IV_SESSION_LABELS

SEED_LABELS = [1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1]


def test_seed_features_match_the_files(seed_root: Path) -> None:
    recs = list(SeedReader(seed_root).sessions())
    assert [(r.subject, r.session) for r in recs] == [(s, e) for s in (1, 2) for e in (1, 2, 3)]
    first = recs[0]
    # session 1 is the earliest date, whatever the order files were written in
    assert first.source.endswith("1_20131027.mat") and first.corpus == "seed"
    mat = scipy.io.loadmat(first.source)
    expected = np.concatenate([mat[f"de_LDS{t}"].transpose(1, 0, 2) for t in range(1, 16)])
    np.testing.assert_allclose(first.features, expected.astype(np.float32))
    counts = [mat[f"de_LDS{t}"].shape[1] for t in range(1, 16)]
    assert first.trial.tolist() == np.repeat(np.arange(1, 16), counts).tolist()
    assert first.window.tolist() == [w for c in counts for w in range(c)]
    mapping = {-1: 0, 0: 1, 1: 2}
    assert first.label.tolist() == np.repeat([mapping[v] for v in SEED_LABELS], counts).tolist()
    other = next(SeedReader(seed_root, feature_key="de_movingAve").sessions())
    assert not np.allclose(other.features, first.features)


def test_seed_raw_becomes_de(seed_root: Path) -> None:
    rec = next(SeedReader(seed_root, source="raw").sessions())
    mat = scipy.io.loadmat(rec.source)
    trial3 = mat["djc_eeg3"]
    assert (rec.trial == 3).sum() == trial3.shape[1] // 200
    expected = differential_entropy(trial3, 200.0).transpose(1, 0, 2)
    np.testing.assert_allclose(rec.features[rec.trial == 3], expected, rtol=1e-6)


def test_seed_iv_labels_come_from_the_session_tables(seed_iv_root: Path) -> None:
    recs = list(SeedIVReader(seed_iv_root).sessions())
    assert len(recs) == 6 and {r.session for r in recs} == {1, 2, 3}
    for r in recs:
        per_trial = {int(t): int(lab) for t, lab in zip(r.trial, r.label)}
        assert [per_trial[t] for t in range(1, 25)] == SEED_IV_SESSION_LABELS[r.session]
    raw = next(SeedIVReader(seed_iv_root, source="raw").sessions())
    assert raw.features.shape[1:] == (62, 5)


def test_deap_labels_baseline_and_windows(deap_root: Path) -> None:
    path = deap_root / "data_preprocessed_python" / "s01.dat"
    obj = pickle.loads(path.read_bytes(), encoding="latin1")
    for dim, col in (("valence", 0), ("arousal", 1)):
        rec = next(DeapReader(deap_root, label_dimension=dim, threshold=5.0).sessions())
        assert rec.features.shape == (40 * 60, 32, 5)
        per_trial = rec.label.reshape(40, 60)[:, 0]
        assert per_trial.tolist() == (obj["labels"][:, col] > 5.0).astype(int).tolist()
    # baseline subtraction, recomputed independently for trial 7
    de = differential_entropy(obj["data"][6, :32], 128.0).transpose(1, 0, 2)  # (63, 32, 5)
    sub = next(DeapReader(deap_root, baseline="subtract").sessions())
    none = next(DeapReader(deap_root, baseline="none").sessions())
    np.testing.assert_allclose(none.features[sub.trial == 7], de[3:], rtol=1e-5)
    np.testing.assert_allclose(sub.features[sub.trial == 7], de[3:] - de[:3].mean(0), rtol=1e-4, atol=1e-5)


# -- bad input ---------------------------------------------------------------------------------------


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/scmm_pickle_ran",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "s01.dat"
    bad.write_bytes(pickle.dumps({"data": _Boom()}, protocol=2))
    Path("/tmp/scmm_pickle_ran").unlink(missing_ok=True)
    with pytest.raises(UnsafePickleError, match=r"s01\.dat.*(posix|os)\.system"):
        load_numpy_pickle(bad)
    assert not Path("/tmp/scmm_pickle_ran").exists()


def copy_root(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_truncated_deap_file_names_the_file(deap_root: Path, tmp_path: Path) -> None:
    root = copy_root(deap_root, tmp_path)
    f = root / "data_preprocessed_python" / "s02.dat"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"s02\.dat.*truncated"):
        list(DeapReader(root).sessions())


def test_deap_wrong_shape_and_nan(tmp_path: Path) -> None:
    folder = tmp_path / "DEAP" / "data_preprocessed_python"
    folder.mkdir(parents=True)
    (folder / "s01.dat").write_bytes(pickle.dumps({"data": np.zeros((40, 40, 100)), "labels": np.ones((40, 4))}, 2))
    with pytest.raises(CorpusError, match=r"s01\.dat.*\(40, 40, 100\)"):
        list(DeapReader(tmp_path / "DEAP").sessions())
    data = np.zeros((40, 40, 8064))
    data[3, 4, 5] = np.nan
    (folder / "s01.dat").write_bytes(pickle.dumps({"data": data, "labels": np.ones((40, 4))}, 2))
    with pytest.raises(CorpusError, match=r"s01\.dat.*NaN"):
        list(DeapReader(tmp_path / "DEAP").sessions())
    (folder / "s01.dat").write_bytes(pickle.dumps({"data": np.zeros((40, 40, 8064)), "labels": np.zeros((40, 4))}, 2))
    with pytest.raises(CorpusError, match="unknown labels"):
        list(DeapReader(tmp_path / "DEAP").sessions())


def test_missing_root_prints_layout_and_source(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"(?s)does not exist.*bcmi.*ExtractedFeatures"):
        SeedReader(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match=r"(?s)data_preprocessed_python.*missing.*s01\.dat"):
        DeapReader(tmp_path)


def test_seed_bad_files(seed_root: Path, tmp_path: Path) -> None:
    root = copy_root(seed_root, tmp_path)
    feat = root / "ExtractedFeatures"
    scipy.io.savemat(feat / "label.mat", {"label": np.array([[1, 0, 7] + [0] * 12])})
    with pytest.raises(CorpusError, match=r"label\.mat.*unknown label values \[7\]"):
        list(SeedReader(root).sessions())
    scipy.io.savemat(feat / "label.mat", {"label": np.array([SEED_LABELS])})
    target = feat / "2_20131106.mat"
    mat = {k: v for k, v in scipy.io.loadmat(target).items() if not k.startswith("__") and k != "de_LDS4"}
    scipy.io.savemat(target, mat)
    with pytest.raises(CorpusError, match=r"2_20131106\.mat.*de_LDS4.*missing"):
        list(SeedReader(root).sessions())
    mat["de_LDS4"] = np.full((62, 3, 5), np.inf)
    scipy.io.savemat(target, mat)
    with pytest.raises(CorpusError, match=r"2_20131106\.mat: de_LDS4.*NaN/inf"):
        list(SeedReader(root).sessions())
    mat["de_LDS4"] = np.zeros((61, 3, 5))
    scipy.io.savemat(target, mat)
    with pytest.raises(CorpusError, match=r"de_LDS4 has shape \(61, 3, 5\)"):
        list(SeedReader(root).sessions())
    target.write_bytes(target.read_bytes()[:300])
    with pytest.raises(CorpusError, match=r"2_20131106\.mat: cannot read"):
        list(SeedReader(root).sessions())
