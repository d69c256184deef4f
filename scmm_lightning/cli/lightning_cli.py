"""The LightningCLI behind ``python -m scmm_lightning {fit,validate,test,predict} --config ...``."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.cli import ArgsType, LightningCLI


class SCMMLightningCLI(LightningCLI):
    """LightningCLI in subclass mode; the model's input shape is linked from the datamodule."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        parser.link_arguments("data.num_channels", "model.init_args.num_channels", apply_on="instantiate")
        parser.link_arguments("data.num_bands", "model.init_args.num_bands", apply_on="instantiate")


def build_cli(args: ArgsType = None, run: bool = True) -> SCMMLightningCLI:
    return SCMMLightningCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_kwargs={
            "description": "SCMM pre-training and evaluation for cross-corpus EEG emotion recognition. Besides the "
            "Lightning subcommands: `prepare` builds a corpus's feature cache (python -m scmm_lightning prepare "
            "--help), `transfer` runs the fine-tuning protocol from a checkpoint (--config RUN.yaml --ckpt_path CKPT), "
            "`reproduce` and `ablations` run settings and methods over seeds (--help each)."
        },
        args=args,
        run=run,
    )
