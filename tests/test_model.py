from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_loops import aggregate_loop, soft_contrastive_loop, soft_weights_loop

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
    from scmm_lightning.seeding import derive_seed as step_seed

    seeds = {step_seed(0, rank, epoch, b) for rank in range(4) for epoch in range(3) for b in range(50)}
    assert len(seeds) == 4 * 3 * 50
    assert step_seed(7, 1, 2, 3) == step_seed(7, 1, 2, 3) and step_seed(7, 1, 2, 3) != step_seed(8, 1, 2, 3)


@pytest.mark.parametrize("mask_num", [1, 2])
def test_scmm_losses_are_wired_as_the_method_says(mask_num: int) -> None:
    """compute_losses against the loop references on a small batch with NEGATIVE inputs (z-scored
    features are): contrastive = soft InfoNCE of S = z z^T with weights from the model inputs
    (originals and masked copies); reconstruction = MSE between each row rebuilt by the aggregator
    from the OTHER rows' decoded h and that row's ORIGINAL sample."""
    torch.manual_seed(3)
    t, alpha, tau_s = 0.4, 0.6, 0.3
    module = SCMMPretraining(
        num_channels=6, num_bands=5, mask_num=mask_num, temperature=t, upper_bound=alpha, sharpness=tau_s
    ).double()
    module.eval()  # BatchNorm on running statistics: a second forward gives the same h
    x = torch.randn(4, 6, 5, dtype=torch.float64) - 0.5
    masked = module.masking(x, torch.Generator().manual_seed(5))[0]
    losses = module.compute_losses(x, None, masked=masked)
    inputs = torch.cat([x, masked])
    sample = list(range(4)) * (mask_num + 1)
    with torch.no_grad():
        h = module.encoder(inputs)
        z = module.projector(h).numpy()
        decoded = module.decoder(h).numpy()
    w = soft_weights_loop(inputs.numpy(), sample, alpha, tau_s)
    assert losses["contrastive"].item() == pytest.approx(soft_contrastive_loop(z, w, t), rel=1e-4)
    rebuilt = aggregate_loop(z, decoded, t)
    target = x.repeat(mask_num + 1, 1, 1).reshape(len(sample), -1).numpy()
    assert losses["reconstruction"].item() == pytest.approx(float(np.mean((rebuilt - target) ** 2)), rel=1e-6)
    # the total: learned uncertainty weighting at its initial scales s = 1: 0.5 L_k + log 2 each
    expected_total = 0.5 * (losses["contrastive"] + losses["reconstruction"]).item() + 2 * np.log(2)
    assert losses["loss"].item() == pytest.approx(expected_total, rel=1e-6)  # the weighting runs in float32


def test_cosine_similarity_switch_matches_the_loop_reference_on_normalised_projections() -> None:
    """similarity=cosine: contrastive and aggregator computed on z / |z| (loop references), and the
    default (dot) differs on the same batch."""
    torch.manual_seed(4)
    t, alpha, tau_s = 0.2, 0.5, 0.5
    kwargs = dict(num_channels=6, num_bands=5, temperature=t, upper_bound=alpha, sharpness=tau_s)
    module = SCMMPretraining(similarity="cosine", **kwargs).double().eval()
    x = torch.randn(5, 6, 5, dtype=torch.float64)
    masked = module.masking(x, torch.Generator().manual_seed(2))[0]
    losses = module.compute_losses(x, None, masked=masked)
    inputs = torch.cat([x, masked])
    sample = list(range(5)) * 2
    with torch.no_grad():
        h = module.encoder(inputs)
        z = F.normalize(module.projector(h), dim=1).numpy()
        decoded = module.decoder(h).numpy()
    w = soft_weights_loop(inputs.numpy(), sample, alpha, tau_s)
    assert losses["contrastive"].item() == pytest.approx(soft_contrastive_loop(z, w, t), rel=1e-5)
    target = x.repeat(2, 1, 1).reshape(10, -1).numpy()
    expected = float(np.mean((aggregate_loop(z, decoded, t) - target) ** 2))
    assert losses["reconstruction"].item() == pytest.approx(expected, rel=1e-5)
    dot = SCMMPretraining(**kwargs).double().eval()
    dot.load_state_dict(module.state_dict())
    with torch.no_grad():
        z_raw = module.projector(h).numpy()
    dot_loss = dot.compute_losses(x, None, masked=masked)["contrastive"].item()
    assert dot_loss == pytest.approx(soft_contrastive_loop(z_raw, w, t), rel=1e-5)  # the default: raw z z^T
    assert abs(dot_loss - losses["contrastive"].item()) > 100 * 1e-5 * dot_loss  # the switch changes the loss


def test_time_soft_weights_switch_is_wired_from_the_batch_metadata() -> None:
    """soft_weights_from=time: the contrastive term uses weights from each window's recording and
    time (loop reference), read from the batch metadata by training_step; labels never reach
    compute_losses; the input-space default differs on the same batch."""
    from reference_loops import time_weights_loop

    torch.manual_seed(6)
    t = 0.2
    kwargs = dict(num_channels=6, num_bands=5, temperature=t, similarity="cosine")
    module = SCMMPretraining(soft_weights_from="time", time_radius=3, time_decay=0.3, **kwargs).double().eval()
    b = 8
    x = torch.randn(b, 6, 5, dtype=torch.float64)
    meta = {
        "subject": torch.tensor([1, 1, 1, 1, 2, 2, 2, 2]),
        "session": torch.tensor([1, 1, 1, 2, 1, 1, 1, 1]),
        "trial": torch.tensor([4, 4, 4, 4, 4, 4, 5, 5]),
        "window": torch.tensor([0, 2, 9, 1, 3, 6, 7, 8]),
    }
    masked = module.masking(x, torch.Generator().manual_seed(2))[0]
    losses = module.compute_losses(x, None, masked=masked, metadata=meta)
    sample = list(range(b)) * 2
    rows = {k: [int(v[s]) for s in sample] for k, v in meta.items()}
    w = time_weights_loop(rows["subject"], rows["session"], rows["trial"], rows["window"], sample, 3, 0.3)
    with torch.no_grad():
        z = F.normalize(module.projector(module.encoder(torch.cat([x, masked]))), dim=1).numpy()
    assert losses["contrastive"].item() == pytest.approx(soft_contrastive_loop(z, w, t), rel=1e-5)
    by_input = SCMMPretraining(**kwargs).double().eval()
    by_input.load_state_dict(module.state_dict())
    other = by_input.compute_losses(x, None, masked=masked, metadata=meta)["contrastive"].item()
    assert abs(other - losses["contrastive"].item()) > 1e-3 * other
    # training_step hands compute_losses the metadata, without the label
    seen = {}

    class Seen(Exception):
        pass

    def spy(x, generator, masked=None, metadata=None):
        seen.update(metadata)
        raise Seen

    module.compute_losses = spy
    with pytest.raises(Seen):
        module.training_step({"x": x, "label": torch.zeros(b, dtype=torch.long), **meta}, 0)
    assert set(seen) == {"subject", "session", "trial", "window"}
