"""The evaluation protocol computes in IEEE float32 whatever precision the run asked torch for, and
gives the run its settings back (``protocol.ieee_float32``).

On a GPU, cuDNN convolves float32 in TF32 by default; the loop engine's convolutions are
``F.conv1d``, the batched engine's are matrix products, so without the guard the engines were
compared at two precisions (session 28 on an H200: the LP-FT benchmark's engines 3 rows apart). The
CPU cannot run TF32, so the end-to-end test below simulates cuDNN: ``F.conv1d`` rounds its operands
to TF32 (nearest, ties away: ``cvt.rna.tf32.f32``) when ``torch.backends.cudnn.conv.fp32_precision``
says ``tf32``, as cuDNN decides per operator. ``tests/test_gpu.py`` measures the real kernels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scmm_lightning.evaluation import FinetuneConfig, protocol, run_protocol
from scmm_lightning.evaluation.protocol import ieee_float32

pytestmark = pytest.mark.skipif(
    not hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"),
    reason="reads torch >= 2.9's per-backend precision settings",
)


def backends() -> dict[str, object]:
    """Every per-backend float32 precision setting this torch has, by name."""
    found = {"generic": torch.backends}
    for name in ("cuda", "cudnn", "mkldnn"):
        module = getattr(torch.backends, name)
        found[name] = module
        for op in ("matmul", "conv", "rnn"):
            found[f"{name}.{op}"] = getattr(module, op, None)
    return {k: v for k, v in found.items() if hasattr(v, "fp32_precision")}


def settings() -> dict[str, object]:
    """The run's precision state as each API reads it (a legacy getter that raises reads ``raises``)."""
    state: dict[str, object] = {k: b.fp32_precision for k, b in backends().items()}
    for name, read in (
        ("float32_matmul_precision", torch.get_float32_matmul_precision),
        ("cuda.matmul.allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
        ("cudnn.allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
    ):
        try:
            state[name] = read()
        except RuntimeError:
            state[name] = "raises"
    return state


@pytest.fixture(autouse=True)
def torch_defaults() -> Iterator[dict[str, object]]:
    """torch's precision settings as a fresh process has them, before and after each test (the tests
    change global state; a worker's later tests must not inherit it)."""
    start = {k: b.fp32_precision for k, b in backends().items()}
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("highest")
    for k, b in backends().items():
        b.fp32_precision = start[k]
    fresh = settings()
    yield fresh
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("highest")
    for k, b in backends().items():
        b.fp32_precision = start[k]
    assert settings() == fresh


RUN_SETTINGS = {
    "torch's defaults": lambda: None,
    "Lightning's advice, high": lambda: torch.set_float32_matmul_precision("high"),
    "Lightning's advice, medium": lambda: torch.set_float32_matmul_precision("medium"),
    "per-backend tf32": lambda: setattr(torch.backends.cuda.matmul, "fp32_precision", "tf32"),
    "legacy cudnn off": lambda: setattr(torch.backends.cudnn, "allow_tf32", False),
    # a state the legacy cuDNN getter already raises on (convolutions IEEE, RNNs and the flag TF32)
    "per-backend conv ieee": lambda: setattr(torch.backends.cudnn.conv, "fp32_precision", "ieee"),
}


class Recorder(nn.Module):
    """An encoder that records ``read()`` at every forward (what the protocol's computations ran
    under: here the precision settings, in ``test_gpu.py`` the kernels' errors) and passes the rows
    on flattened (``target``'s 6 x 5 windows: 30 features)."""

    def __init__(self, read: Callable[[], object]) -> None:
        super().__init__()
        self.read = read
        self.seen: list = []
        self.out_features = 30

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.read())
        return x.flatten(1)


def assert_ieee(state: dict[str, object], cudnn_legacy_readable: bool = True) -> None:
    """IEEE everywhere, and the legacy getters readable (``torch.backends.cudnn.flags()`` and compilers
    read them) wherever the run's state was."""
    assert state["cudnn.conv"] == "ieee" and state["cudnn.rnn"] == "ieee", state
    assert state["cudnn.allow_tf32"] is False or not cudnn_legacy_readable, state
    assert state["cuda.matmul"] in ("ieee", "none") and state["generic"] == "none", state
    assert state["mkldnn.matmul"] in ("ieee", "none"), state  # not bf16
    assert state["float32_matmul_precision"] == "highest"
    assert state["cuda.matmul.allow_tf32"] is False


@pytest.mark.parametrize("run_setting", list(RUN_SETTINGS))
def test_the_protocol_computes_in_ieee_float32_and_gives_the_run_its_settings_back(
    run_setting: str, torch_defaults: dict[str, object]
) -> None:
    from test_batched_evaluation import target

    RUN_SETTINGS[run_setting]()
    before = settings()
    if run_setting != "torch's defaults":
        assert before != torch_defaults  # the case sets something
    readable = before["cudnn.allow_tf32"] != "raises"
    assert readable == (run_setting != "per-backend conv ieee")
    train, test = target({1: 9, 2: 5})
    encoder = Recorder(settings)
    run_protocol({"recorder": encoder}, train, test, 3, FinetuneConfig(selection="holdout"), 7, ("probe",))
    assert encoder.seen
    for state in encoder.seen:
        assert_ieee(state, readable)
    assert settings() == before


def test_the_settings_come_back_when_the_protocol_raises() -> None:
    torch.set_float32_matmul_precision("medium")
    before = settings()
    with pytest.raises(ZeroDivisionError), ieee_float32():
        assert_ieee(settings())
        1 / 0  # noqa: B018
    assert settings() == before


def _tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 rounded to TF32's 10-bit mantissa, to nearest with ties away from zero."""
    bits = x.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


class _RoundToTF32(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return _tf32(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return _tf32(grad)  # cuDNN's backward convolutions round their operands too


def test_tf32_convolutions_split_the_engines_and_the_protocol_keeps_them_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torch's default (cuDNN convolutions in TF32), simulated: without the guard the loop
    engine convolves in TF32 and the batched one does not, and the two disagree on this fixture (a
    validation score; found by trying, 1.7 s); with it they agree as on any CPU."""
    from test_batched_evaluation import assert_same, encoders, target

    conv1d = F.conv1d

    def cudnn_conv1d(x: torch.Tensor, w: torch.Tensor, *args, **kwargs) -> torch.Tensor:  # noqa: ANN002, ANN003
        if x.dtype == torch.float32 and torch.backends.cudnn.conv.fp32_precision == "tf32":
            x, w = _RoundToTF32.apply(x), _RoundToTF32.apply(w)
        return conv1d(x, w, *args, **kwargs)

    monkeypatch.setattr(F, "conv1d", cudnn_conv1d)
    assert torch.backends.cudnn.conv.fp32_precision == "tf32"  # torch's default
    train, test = target({1: 9, 2: 5, 3: 13, 4: 7})

    def compare() -> None:
        results = {}
        for engine in ("loop", "batched"):
            config = FinetuneConfig(batch_size=16, engine=engine, recipe="lpft", steps=30, eval_every=5, lr=3e-3,
                                    encoder_lr=1e-3, val_subjects=1, folds=3)  # fmt: skip
            results[engine] = run_protocol({"cnn": encoders()["cnn"]}, train, test, 3, config, 7, ("finetune",))
        assert_same(results["loop"], results["batched"])

    with monkeypatch.context() as unguarded:  # the protocol without its guard
        unguarded.setattr(protocol, "ieee_float32", contextlib.nullcontext)
        with pytest.raises(AssertionError):
            compare()
    compare()


def test_before_torch_2_9_the_legacy_settings_are_set_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch < 2.9 (the project allows 2.3) has only the legacy settings: ``cudnn.allow_tf32`` and
    ``set_float32_matmul_precision``. Backends shaped as there (no ``fp32_precision``) stand in for
    this torch's."""

    class LegacyCudnn:
        allow_tf32 = True  # torch's default

    class LegacyMatmul:
        allow_tf32 = False

    cudnn = LegacyCudnn()
    monkeypatch.setattr(torch.backends, "cudnn", cudnn)
    monkeypatch.setattr(torch.backends.cuda, "matmul", LegacyMatmul())
    monkeypatch.setattr(torch.backends, "mkldnn", object())
    torch.set_float32_matmul_precision("high")
    with ieee_float32():
        assert cudnn.allow_tf32 is False and torch.get_float32_matmul_precision() == "highest"
    assert cudnn.allow_tf32 is True and torch.get_float32_matmul_precision() == "high"
    cudnn.allow_tf32 = False  # a run that turned TF32 off keeps it off
    with ieee_float32():
        assert cudnn.allow_tf32 is False
    assert cudnn.allow_tf32 is False
