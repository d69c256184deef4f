from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_loops import aggregate_loop

from scmm_lightning.model import CNNEncoder
from scmm_lightning.tasks import SCMMPretraining


def test_encoder_output_size_matches_paper() -> None:
    enc = CNNEncoder(62, 5)
    assert enc.out_features == 384
    assert enc(torch.rand(3, 62, 5)).shape == (3, 384)
    assert CNNEncoder(32, 5, widths=(16, 32)).out_features == 32 * 3  # lengths 5 -> 6 -> 4 -> 5 -> 3


@pytest.mark.parametrize("mask_num", [1, 2])
def test_gradients_reach_every_parameter(mask_num: int) -> None:
    torch.manual_seed(0)
    module = SCMMPretraining(num_channels=8, num_bands=5, mask_num=mask_num)
    losses = module.compute_losses(torch.rand(6, 8, 5), torch.Generator().manual_seed(0))
    losses["loss"].backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_reconstruction_targets_the_original_through_the_aggregator() -> None:
    """Recompute the reconstruction loss independently: every row (original or masked) is rebuilt
    from the other rows' decoded representations and compared with its ORIGINAL sample."""
    torch.manual_seed(1)
    module = SCMMPretraining(num_channels=6, num_bands=5, mask_num=2).double()
    module.eval()  # BatchNorm on running stats so a second forward gives the same h
    x = torch.rand(4, 6, 5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(7)
    losses = module.compute_losses(x, gen)
    masked, _ = module.masking(x, torch.Generator().manual_seed(7))
    inputs = torch.cat([x, masked])
    with torch.no_grad():
        h = module.encoder(inputs)
        z = module.projector(h)
        rebuilt_h = aggregate_loop(z.numpy(), h.numpy(), module.hparams.temperature)
        x_r = module.decoder(torch.from_numpy(rebuilt_h)).view_as(inputs)
    expected = F.mse_loss(x_r, x.repeat(3, 1, 1)).item()
    assert losses["reconstruction"].item() == pytest.approx(expected, rel=1e-6)
    # and the reference's bug, kept as an explicit option, differs
    module.hparams.reconstruction_target = "masked_input"
    buggy = module.compute_losses(x, torch.Generator().manual_seed(7))["reconstruction"].item()
    expected_buggy = F.mse_loss(x_r, inputs).item()
    assert buggy == pytest.approx(expected_buggy, rel=1e-6)
    assert not np.isclose(buggy, expected)


def test_without_aggregator_each_row_decodes_itself() -> None:
    torch.manual_seed(2)
    module = SCMMPretraining(num_channels=6, num_bands=5, use_aggregator=False).double().eval()
    x = torch.rand(4, 6, 5, dtype=torch.float64)
    losses = module.compute_losses(x, torch.Generator().manual_seed(1))
    masked, _ = module.masking(x, torch.Generator().manual_seed(1))
    inputs = torch.cat([x, masked])
    with torch.no_grad():
        x_r = module.decoder(module.encoder(inputs)).view_as(inputs)
    assert losses["reconstruction"].item() == pytest.approx(F.mse_loss(x_r, x.repeat(2, 1, 1)).item(), rel=1e-6)


def test_optimizer_defaults_follow_reference() -> None:
    module = SCMMPretraining(num_channels=4)
    opt = module.configure_optimizers()["optimizer"]
    assert opt.defaults["lr"] == 5e-4 and opt.defaults["betas"] == (0.9, 0.99)
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 3e-4]  # loss-weight scales are not decayed


def test_mask_seeds_differ_per_rank_and_repeat_per_seed() -> None:
    from scmm_lightning.tasks.scmm import step_seed

    seeds = {step_seed(0, rank, epoch, b) for rank in range(4) for epoch in range(3) for b in range(50)}
    assert len(seeds) == 4 * 3 * 50
    assert step_seed(7, 1, 2, 3) == step_seed(7, 1, 2, 3) and step_seed(7, 1, 2, 3) != step_seed(8, 1, 2, 3)
