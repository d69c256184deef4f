from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_loops import aggregate_loop, soft_contrastive_loop, soft_weights_loop

from scmm_lightning.losses import SoftContrastiveLoss, UncertaintyWeighting, soft_weights, time_weights
from scmm_lightning.model import Masking, SimilarityAggregator, masked_logits, similarity_matrix


def make_batch(b: int, mask_num: int, c: int = 4, f: int = 5, seed: int = 0):
    """Originals + masked copies, copy-major, as the task builds them."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, f, generator=gen)
    masked, _ = Masking("hybrid", 0.5, 0.3, mask_num)(x, gen)
    inputs = torch.cat([x, masked]).double()
    sample = torch.arange(b).repeat(mask_num + 1)
    z = torch.randn(inputs.shape[0], 6, generator=gen, dtype=torch.float64)
    return inputs, sample, z


CASES = [(2, 1), (3, 1), (5, 1), (3, 2), (4, 2), (6, 2)]


@pytest.mark.parametrize("b,mask_num", CASES)
@pytest.mark.parametrize("alpha,tau_s", [(0.5, 0.5), (0.75, 0.05), (0.5, 0.2)])
def test_soft_weights_match_loop(b: int, mask_num: int, alpha: float, tau_s: float) -> None:
    inputs, sample, _ = make_batch(b, mask_num)
    expected = soft_weights_loop(inputs.numpy(), sample.tolist(), alpha, tau_s)
    got = soft_weights(inputs, sample, alpha, tau_s).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)  # float32 inside
    # analytic landmarks: positives weigh 1, the diagonal 0, the rest within (0, alpha]
    n = inputs.shape[0]
    for i in range(n):
        for j in range(n):
            if i != j and sample[i] != sample[j]:
                assert 2 * alpha / (1 + np.exp(1 / tau_s)) - 1e-6 <= got[i, j] <= alpha + 1e-6


@pytest.mark.parametrize("b,mask_num", CASES)
@pytest.mark.parametrize("soft", [True, False])
def test_soft_contrastive_matches_loop(b: int, mask_num: int, soft: bool) -> None:
    inputs, sample, z = make_batch(b, mask_num, seed=b * 10 + mask_num)
    t, alpha, tau_s = 0.5, 0.6, 0.3
    w = soft_weights_loop(inputs.numpy(), sample.tolist(), alpha, tau_s, soft=soft)
    expected = soft_contrastive_loop(z.numpy(), w, t)
    loss = SoftContrastiveLoss(t, alpha, tau_s, soft=soft)
    got = loss(similarity_matrix(z, z), inputs, sample)
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_soft_contrastive_stable_for_large_similarities() -> None:
    inputs, sample, z = make_batch(4, 1)
    z = z * 1e3  # logits ~1e6 / T: a naive exp overflows
    loss = SoftContrastiveLoss(0.05, 0.5, 0.2)(similarity_matrix(z, z), inputs, sample)
    assert torch.isfinite(loss)
    expected = soft_contrastive_loop(z.numpy(), soft_weights_loop(inputs.numpy(), sample.tolist(), 0.5, 0.2), 0.05)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("b,mask_num", CASES)
def test_aggregator_matches_loop(b: int, mask_num: int) -> None:
    _, _, z = make_batch(b, mask_num, seed=3)
    values = torch.randn(z.shape[0], 7, dtype=torch.float64)
    expected = aggregate_loop(z.numpy(), values.numpy(), 0.5)
    got = SimilarityAggregator(0.5)(similarity_matrix(z, z), values.float()).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_row_blocks_add_up_to_the_whole() -> None:
    """Owned-row blocks (as DDP ranks use them) average to the full-batch loss and aggregate."""
    inputs, sample, z = make_batch(6, 1, seed=5)
    loss = SoftContrastiveLoss(0.5, 0.5, 0.5)
    sim = similarity_matrix(z, z)
    whole = loss(sim, inputs, sample)
    n = z.shape[0]
    blocks = [torch.arange(0, n // 2), torch.arange(n // 2, n)]
    parts = [loss(similarity_matrix(z[r], z), inputs, sample, r) for r in blocks]
    assert torch.stack(parts).mean().item() == pytest.approx(whole.item(), rel=1e-6)
    values = torch.randn(n, 3)
    agg = SimilarityAggregator(0.5)
    full = agg(sim, values)
    for r in blocks:
        torch.testing.assert_close(agg(similarity_matrix(z[r], z), values, r), full[r], rtol=1e-5, atol=1e-6)


def test_masked_logits_exclude_self_without_nan() -> None:
    z = torch.randn(5, 3)
    logits = masked_logits(similarity_matrix(z, z), 0.5)
    probs = torch.softmax(logits, 1)
    assert torch.all(probs.diagonal() == 0)
    assert torch.isfinite(torch.log_softmax(logits, 1)).all()


def test_uncertainty_weighting_formula_and_gradient() -> None:
    uw = UncertaintyWeighting(2)
    with torch.no_grad():
        uw.scales.copy_(torch.tensor([0.5, 2.0]))
    l1, l2 = torch.tensor(3.0), torch.tensor(5.0)
    expected = 0.5 / 0.25 * 3.0 + np.log(1 + 0.25) + 0.5 / 4.0 * 5.0 + np.log(1 + 4.0)
    total = uw([l1, l2])
    assert total.item() == pytest.approx(expected, rel=1e-6)
    total.backward()
    # d/ds [0.5 L / s^2 + log(1 + s^2)] = -L / s^3 + 2 s / (1 + s^2)
    grad = [-3.0 / 0.125 + 1.0 / 1.25, -5.0 / 8.0 + 4.0 / 5.0]
    np.testing.assert_allclose(uw.scales.grad.numpy(), grad, rtol=1e-5)
    fixed = UncertaintyWeighting(2, learn=False)
    assert not any(p.requires_grad for p in fixed.parameters())
    assert fixed([l1, l2]).item() == pytest.approx(0.5 * 8 + 2 * np.log(2), rel=1e-6)


def time_batch(b: int, mask_num: int, seed: int = 0):
    """Windows of a few recordings (subject, session, trial) with window indices close and far."""
    gen = np.random.default_rng(seed)
    meta = {
        "subject": gen.integers(1, 3, b),
        "session": gen.integers(1, 3, b),
        "trial": gen.integers(1, 3, b),
        "window": gen.integers(0, 12, b),
    }
    sample = list(range(b)) * (mask_num + 1)
    rows = {k: [int(v[s]) for s in sample] for k, v in meta.items()}
    return meta, sample, rows


@pytest.mark.parametrize("b,mask_num", CASES + [(16, 1), (12, 2)])
@pytest.mark.parametrize("radius,decay", [(0, 0.0), (3, 0.0), (5, 0.4), (100, 0.1)])
def test_time_weights_match_loop(b: int, mask_num: int, radius: int, decay: float) -> None:
    from reference_loops import time_weights_loop

    from scmm_lightning.tasks.scmm import recording_times

    meta, sample, rows = time_batch(b, mask_num, seed=b + mask_num)
    expected = time_weights_loop(rows["subject"], rows["session"], rows["trial"], rows["window"], sample, radius, decay)
    recording, window = recording_times({k: torch.as_tensor(v) for k, v in meta.items()}, b)
    got = time_weights(recording, window, torch.as_tensor(sample), radius, decay).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    # owned-row blocks (DDP) are the matching rows of the whole
    half = torch.arange(len(sample) // 2, len(sample))
    block = time_weights(recording, window, torch.as_tensor(sample), radius, decay, rows=half).double().numpy()
    np.testing.assert_allclose(block, expected[len(sample) // 2 :], rtol=1e-6, atol=1e-7)


def test_soft_contrastive_with_time_weights_matches_loop() -> None:
    from reference_loops import time_weights_loop

    from scmm_lightning.tasks.scmm import recording_times

    b, mask_num = 10, 1
    meta, sample, rows = time_batch(b, mask_num, seed=3)
    inputs, _, z = make_batch(b, mask_num, seed=4)
    w = time_weights_loop(rows["subject"], rows["session"], rows["trial"], rows["window"], sample, 4, 0.2)
    assert (w[np.array(sample)[:, None] != np.array(sample)[None, :]] > 0).any()  # the batch has time neighbours
    expected = soft_contrastive_loop(z.numpy(), w, 0.3)
    loss = SoftContrastiveLoss(0.3, weights_from="time", time_radius=4, time_decay=0.2)
    time = recording_times({k: torch.as_tensor(v) for k, v in meta.items()}, b)
    got = loss(similarity_matrix(z, z), inputs, torch.as_tensor(sample), time=time)
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    with pytest.raises(ValueError, match="recording and window"):
        loss(similarity_matrix(z, z), inputs, torch.as_tensor(sample))
