from __future__ import annotations

import pytest
import torch

from scmm_lightning.model import Masking, default_mask_num


def draw(mode: str, ratio: float, threshold: float, b: int = 400, c: int = 62, f: int = 5, num: int = 1):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(b, c, f, generator=gen) + 0.5  # strictly positive so zeros mean "masked"
    masked, keep = Masking(mode, ratio, threshold, num)(x, gen)
    return x, masked, keep


@pytest.mark.parametrize("mode", ["random", "channel", "hybrid", "parallel"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.8])
def test_kept_fraction_close_to_one_minus_ratio(mode: str, ratio: float) -> None:
    x, masked, keep = draw(mode, ratio, 0.1)
    # 124,000 entries (24,800 channel rows): 5 binomial std devs is < 0.02
    assert keep.float().mean().item() == pytest.approx(1 - ratio, abs=0.02)
    torch.testing.assert_close(masked, x * keep)
    assert torch.equal(masked == 0, ~keep)


def test_channel_mask_rows_all_or_none() -> None:
    _, _, keep = draw("channel", 0.5, 0.1)
    row_kept = keep.float().mean(dim=2)
    assert torch.all((row_kept == 0) | (row_kept == 1))


def test_random_mask_mixes_within_rows() -> None:
    _, _, keep = draw("random", 0.5, 0.1)
    row_kept = keep.float().mean(dim=2)
    partial = ((row_kept > 0) & (row_kept < 1)).float().mean().item()
    assert partial == pytest.approx(1 - 2 * 0.5**5, abs=0.02)  # P(row neither all kept nor all masked)


@pytest.mark.parametrize("threshold", [0.1, 0.4])
def test_hybrid_uses_channel_mask_at_threshold_rate(threshold: float) -> None:
    """A row drawn from the random mask is partial with prob 1 - 2 r^5 (r = 0.5); a channel-mask row
    never is. So P(partial) = (1 - threshold) * (1 - 2 / 32) identifies the mixing rate."""
    _, _, keep = draw("hybrid", 0.5, threshold, b=1000)
    row_kept = keep.float().mean(dim=2)
    partial = ((row_kept > 0) & (row_kept < 1)).float().mean().item()
    est_threshold = 1 - partial / (1 - 2 * 0.5**5)
    assert est_threshold == pytest.approx(threshold, abs=0.02)


def test_parallel_chooses_per_sample() -> None:
    _, _, keep = draw("parallel", 0.5, 0.5, b=600)
    row_kept = keep.float().mean(dim=2)
    partial_rows = (row_kept > 0) & (row_kept < 1)
    channel_like = ~partial_rows.any(dim=1)  # no partial row at all: the sample took the channel mask
    assert channel_like.float().mean().item() == pytest.approx(0.5, abs=0.07)
    # the choice is per sample: under hybrid at the same threshold every row chooses for itself,
    # so a sample whose 62 rows all took the channel mask (probability 0.5^62) never appears
    _, _, keep_h = draw("hybrid", 0.5, 0.5, b=600)
    row_kept_h = keep_h.float().mean(dim=2)
    assert (((row_kept_h > 0) & (row_kept_h < 1)).any(dim=1)).all()


def test_copies_are_independent_and_copy_major() -> None:
    x, masked, keep = draw("random", 0.5, 0.1, b=50, num=3)
    assert masked.shape == (150, 62, 5)
    for m in range(3):
        torch.testing.assert_close(masked[m * 50 : (m + 1) * 50], x * keep[m * 50 : (m + 1) * 50])
    assert not torch.equal(keep[:50], keep[50:100])


def test_same_generator_seed_same_mask_and_bad_settings() -> None:
    x = torch.rand(8, 4, 5)
    masking = Masking()
    a = masking(x, torch.Generator().manual_seed(3))[1]
    b = masking(x, torch.Generator().manual_seed(3))[1]
    assert torch.equal(a, b)
    assert default_mask_num(0.5) == 3 and Masking(num_masks=None, ratio=0.5).num_masks == 3
    with pytest.raises(ValueError, match="mask mode"):
        Masking("blocks")
    with pytest.raises(ValueError, match="ratio"):
        Masking(ratio=1.0)
