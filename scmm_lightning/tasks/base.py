"""What every pre-training method shares: construction (hyper-parameters saved, then the
``configure_*`` hooks), the encoder, per-step mask seeds, logging, optimiser and schedule.

A method declares only its own arguments and passes the rest through ``**kwargs``; the shared
ones (model shape, encoder, optimiser, schedule) are declared and documented once here, and
jsonargparse follows the pass-through so ``--help`` and ``--print_config`` list them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, PositiveFloat, restricted_number_type
from torch import Tensor, nn

from .. import __version__
from ..field_types import check_arguments, init_hints
from ..model import CNNEncoder, Masking, MaskMode, Projector
from ..model.pretrained import (
    CONFIG_FILE,
    EncoderFolderError,
    build_encoder,
    check_electrodes,
    encoder_spec,
    load_encoder,
    read_config,
)
from ..seeding import derive_seed, run_seed

EncoderFactory = Callable[[int, int], nn.Module]

MaskRatio = restricted_number_type("MaskRatio", float, [(">=", 0.0), ("<", 1.0)], join="and", docstring="[0, 1)")
"""Options with a range get a range type: the CLI refuses an out-of-range value with one short
message naming the option (``model.init_args.mask_ratio``) and the range, before anything is built."""


def make_adam(groups: list[dict[str, Any]], lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where this torch supports it for the parameters' device (same
    update rule; on the CPU it saves about a millisecond per step at the paper's model size)."""
    params = [p for g in groups for p in g["params"]]
    if params and all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params):
        try:
            return torch.optim.Adam(groups, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError):  # older torch: no fused Adam on this device
            pass
    return torch.optim.Adam(groups, lr=lr, betas=betas)


class PretrainingTask(L.LightningModule):
    """Base of the pre-training LightningModules.

    ``__init__`` saves every argument of the whole class chain as hyper-parameters (the encoder
    factory excepted), then calls :meth:`configure_models` and :meth:`configure_losses`; a method
    implements those hooks and :meth:`compute_losses` (a dict of losses; key ``loss`` is optimised;
    it receives the batch's per-window metadata ``subject``, ``session``, ``trial``, ``window``, which
    a method may use, never ``label``).

    Args:
        num_channels: electrodes C (linked from the datamodule by the CLI).
        num_bands: frequency bands F (linked from the datamodule by the CLI).
        encoder: class taking ``(num_channels, num_bands)`` first, e.g. ``CNNEncoder`` (default).
        lr: Adam learning rate; 0 is allowed: the untrained control of
            ``benchmarks/untrained_control.py`` (the same run, the weights left at their start).
        betas: Adam betas.
        weight_decay: Adam weight decay (not applied to parameters named in ``no_decay_prefixes``).
        cosine_epochs: cosine annealing period in epochs; ``None`` uses ``trainer.max_epochs``.
        min_lr: learning rate at the end of the cosine period.
        flush_denormal: during fit, flush float32 denormals to zero on the CPU. The softmaxes over
            ``S / T`` produce many values near exp(-100); denormal arithmetic on them is tens of
            times slower (measured: aggregator step 58 ms -> 3.7 ms at N = 512) and changes no
            result beyond 1e-38.
        pretrained: an exported encoder folder (``python -m scmm_lightning export``) to start from:
            its architecture and weights replace ``encoder`` (the random-init control gets the same
            architecture); the data must offer its electrodes in its order (checked at setup).

    Every checkpoint also records, under ``"scmm_lightning"``, the encoder's class and arguments,
    the data's input description (electrodes, bands, window, normalisation statistics, subject
    counts), the run seed and the package version: what ``export`` writes into ``config.json``.
    """

    #: parameter-name prefixes excluded from weight decay
    no_decay_prefixes: tuple[str, ...] = ()

    def __init__(
        self,
        num_channels: int = 62,
        num_bands: int = 5,
        encoder: EncoderFactory | None = None,
        lr: NonNegativeFloat = 5e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: NonNegativeFloat = 3e-4,
        cosine_epochs: int | None = None,
        min_lr: NonNegativeFloat = 0.0,
        flush_denormal: bool = True,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        # the CLI checked these already; a Python caller's reconstruction_target="masked" ran the
        # reference's defect (the masked input as target) without a word
        check_arguments(self.hparams, init_hints(type(self), PretrainingTask), "model.init_args", type(self).__name__)
        self.encoder_factory = encoder
        if pretrained and encoder is not None:
            raise EncoderFolderError(
                "model.init_args.encoder and model.init_args.pretrained are both set: the exported folder fixes the "
                "architecture; drop model.init_args.encoder"
            )
        self._mask_generator: torch.Generator | None = None
        self.configure_models()
        self.configure_losses()

    def configure_models(self) -> None:
        """Build the networks (at least ``self.encoder``)."""
        if self.hparams.get("pretrained"):
            self.encoder = load_encoder(self.hparams.get("pretrained")).encoder.train()
        else:
            self.encoder = self.build_encoder()

    def configure_losses(self) -> None:
        """Build the loss modules."""

    def build_encoder(self) -> nn.Module:
        """A new encoder of the configured architecture (also the random-init control)."""
        if self.hparams.get("pretrained"):
            folder = self.hparams.get("pretrained")
            encoder = build_encoder(read_config(folder)["encoder"], where=f"{folder}/{CONFIG_FILE}")
        else:
            factory = self.encoder_factory or CNNEncoder
            encoder = factory(self.hparams.num_channels, self.hparams.num_bands)
        if not isinstance(getattr(encoder, "out_features", None), int):
            raise TypeError(f"encoder {type(encoder).__name__} must expose an integer `out_features`")
        return encoder

    def forward(self, x: Tensor) -> Tensor:
        """Encoder representation h of samples (B, C, F)."""
        return self.encoder(x)

    def compute_losses(
        self,
        x: Tensor,
        generator: torch.Generator | None,
        masked: Tensor | None = None,
        metadata: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def mask_generator(self, device: torch.device, batch_idx: int, epoch: int | None = None) -> torch.Generator:
        """Generator reseeded from (seed, rank, epoch, batch): reproducible, different per rank,
        and independent of what ran before, so a resumed run draws the same masks."""
        if self._mask_generator is None or self._mask_generator.device != device:
            self._mask_generator = torch.Generator(device=device)
        epoch = self.current_epoch if epoch is None else epoch
        self._mask_generator.manual_seed(derive_seed(run_seed(), self.global_rank, epoch, batch_idx))
        return self._mask_generator

    def extra_logs(self) -> dict[str, Tensor]:
        """Epoch-level values to log besides the losses (e.g. learned loss weights)."""
        return {}

    # -- Lightning hooks -------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        folder = self.hparams.get("pretrained")
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(datamodule, "channel_names", None)
        if folder and names is not None:
            what = f"the data ({getattr(datamodule, 'corpus_name', type(datamodule).__name__)})"
            check_electrodes(read_config(folder), list(names), what, folder)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        describe = getattr(datamodule, "input_description", None)
        try:
            spec = encoder_spec(self.encoder)
        except TypeError as err:  # a custom encoder that does not store its arguments: still a checkpoint
            spec = {"not_exportable": str(err)}
        checkpoint["scmm_lightning"] = {
            "version": __version__,
            "seed": run_seed(),
            "encoder": spec,
            "input": describe() if describe is not None else None,
        }

    def on_fit_start(self) -> None:
        if self.hparams.flush_denormal:
            torch.set_flush_denormal(True)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x = batch["x"]
        metadata = {k: v for k, v in batch.items() if k not in ("x", "label")}  # pre-training never sees labels
        losses = self.compute_losses(x, self.mask_generator(x.device, batch_idx), metadata=metadata)
        # Stop at the first non-finite loss seen. On the CPU the check is free; on an accelerator it is a
        # device sync, so it runs every 50th step there (a NaN does not heal: it is caught within 50 steps).
        check = x.device.type == "cpu" or batch_idx % 50 == 0
        if check and not bool(torch.isfinite(losses["loss"])):
            hp = self.hparams
            settings = ", ".join(f"{k}={hp[k]}" for k in ("temperature", "lr", "sharpness", "upper_bound") if k in hp)
            bad = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            raise FloatingPointError(
                f"non-finite training loss at epoch {self.current_epoch}, batch {batch_idx} (global step "
                f"{self.global_step}): {bad}. Likely settings: {settings} (a very small temperature overflows the "
                "softmax logits; a large lr diverges); under precision 16-mixed try bf16-mixed or 32"
            )
        sync = self.trainer.world_size > 1
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in losses.items()},
            on_step=True,
            on_epoch=True,
            batch_size=x.shape[0],
            sync_dist=sync,
        )
        self.log("loss", losses["loss"].detach(), prog_bar=True, logger=False, batch_size=x.shape[0])
        extra = self.extra_logs()
        if extra:
            self.log_dict(extra, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=sync)
        return losses["loss"]

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        skip = (
            [p for n, p in self.named_parameters() if n.startswith(self.no_decay_prefixes)]
            if self.no_decay_prefixes
            else []
        )
        skip_ids = {id(p) for p in skip}
        groups = [{"params": [p for p in self.parameters() if id(p) not in skip_ids], "weight_decay": hp.weight_decay}]
        if skip:
            groups.append({"params": skip, "weight_decay": 0.0})
        optimizer = make_adam(groups, hp.lr, tuple(hp.betas))
        max_epochs = self._trainer.max_epochs if self._trainer is not None else None
        period = hp.cosine_epochs or (max_epochs if max_epochs and max_epochs > 0 else 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=period, eta_min=hp.min_lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class MaskedPretrainingTask(PretrainingTask):
    """A method that pre-trains on masked copies of each sample (SCMM and its baselines).

    Args:
        mask_mode: ``random``, ``channel``, ``hybrid`` (per electrode) or ``parallel`` (per sample).
        mask_ratio: fraction of entries / channels masked, in [0, 1).
        mask_threshold: hybrid/parallel: probability of using the channel mask.
        mask_num: masked copies per sample; ``None`` means ``ceil(1.5 / (1 - mask_ratio))``.
    """

    def __init__(
        self,
        mask_mode: MaskMode = "hybrid",
        mask_ratio: MaskRatio = 0.5,
        mask_threshold: ClosedUnitInterval = 0.1,
        mask_num: int | None = 1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        super().configure_models()
        hp = self.hparams
        self.masking = Masking(hp.mask_mode, hp.mask_ratio, hp.mask_threshold, hp.mask_num)


class ContrastivePretrainingTask(MaskedPretrainingTask):
    """A masked method with a projector and a contrastive softmax over the (possibly global) batch.

    Args:
        projection_hidden: hidden width of the projector.
        projection_dim: output width of the projector (z).
        temperature: T of the contrastive softmax.
        global_negatives: under DDP, compare each rank's rows with the batch gathered from every
            rank (``False``: per-rank batches).
    """

    def __init__(
        self,
        projection_hidden: int = 256,
        projection_dim: int = 128,
        temperature: PositiveFloat = 0.5,
        global_negatives: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        super().configure_models()
        hp = self.hparams
        self.projector = Projector(self.encoder.out_features, hp.projection_hidden, hp.projection_dim)
