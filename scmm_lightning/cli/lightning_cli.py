"""The LightningCLI behind ``python -m scmm_lightning {fit,validate,test,predict} --config ...``."""

from __future__ import annotations

import inspect
import logging
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from .checkpoint_file import load_checkpoint
from .options import unknown_option_hint


class _NotActionable(logging.Filter):
    """Drops Lightning's advertising tips (install litlogger / litmodels): nothing a user of this
    command can act on. Every other Lightning message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("💡 Tip:")


def quiet_third_party_noise() -> None:
    """Filter what a user cannot act on, keep what they can: Lightning's tips; its own pytree helper's
    ``LeafSpec`` deprecation (Lightning's code, not ours or the user's); LightningCLI's "args and
    command line" warning when ``transfer`` / ``ablations`` pass parsed arguments on purpose."""
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NotActionable) for f in logger.filters):
            logger.addFilter(_NotActionable())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended.*")


_NESTED_KEY = re.compile(r'Parser key "([^"]+)"')
_NOT_ACCEPTED = re.compile(r"Option '(\w+)' is not accepted")
_RANGE = re.compile(r"Not of type \w+: (\S+) does not conform to restriction (.+)")


def _given(command_line: Sequence[str], name: str) -> list[str]:
    """The options of the command line whose last part is ``name``, as written (``--model.x``)."""
    options = [a.split("=")[0] for a in command_line if a.startswith("--")]
    return [o for o in options if o.endswith(f".{name}")]


def short_error(message: str, command_line: Sequence[str] = ()) -> str:
    """jsonargparse's nested report of a bad option, shortened to the option's full path as given
    on ``command_line``, the value and what is allowed (the full report stays below for anything it
    does not recognise)."""
    key = None
    for line in message.splitlines():
        m = _NESTED_KEY.search(line)
        if m:
            key = m.group(1)
        r = _RANGE.search(line)
        if r and key:
            given = _given(command_line, key)
            path = given[0][2:] if given else key
            return f"option {path}: {r.group(1)} is out of range; allowed: {r.group(2).replace('v', 'value')}"
    m = _NOT_ACCEPTED.search(message)
    given = _given(command_line, m.group(1)) if m else []
    if len(given) == 1:  # jsonargparse names an unknown argument of a chosen class without its path
        owner = given[0][: -len(m.group(1)) - 1].removesuffix(".init_args")
        subcommand = command_line[0] if command_line and not command_line[0].startswith("-") else "fit"
        return (
            f"option {given[0]}: the class chosen for {owner[2:]} takes no argument {m.group(1)!r} "
            f"(python -m scmm_lightning {subcommand} [--config ...] {owner}.help CLASS_PATH lists the ones it takes)"
        )
    if given:  # which of them jsonargparse means, it does not say
        return f"{message} (one of {', '.join(given)}: the class chosen there takes no such argument)"
    return message


class ShortErrorParser(LightningArgumentParser):
    """Bad options end in one short message naming the option and the allowed values, not a usage
    screen and a nested report. Options are written in full: no prefixes (``cli/options.py`` says
    why), and an unknown option is answered with the ones it may have meant."""

    command_line: tuple[str, ...] = ()  # what was parsed (set by SCMMLightningCLI): errors name options as given

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):  # noqa: ANN201
        message = unknown_option_hint(short_error(message, self.command_line), self._option_string_actions)
        print(f"error: {message}\n(python -m scmm_lightning fit --help lists every option)", file=sys.stderr)
        raise SystemExit(2)


def _plain(value: Any) -> Any:
    """A hyper-parameter in comparable form (range-typed numbers as plain ones, tuples and lists
    alike, namespaces as dicts)."""
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, Namespace):
        return {k: _plain(v) for k, v in vars(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class SCMMLightningCLI(LightningCLI):
    """LightningCLI in subclass mode; the model's input shape is linked from the datamodule; the
    logger's directory follows ``--trainer.default_root_dir`` given alone on the command line; a
    ``--ckpt_path`` is checked (weights only, whole) before anything is built."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        given = kwargs.get("args")
        self.raw_args = (
            [str(a) for a in (sys.argv[1:] if given is None else given)] if not isinstance(given, dict) else []
        )
        ShortErrorParser.command_line = tuple(self.raw_args)
        self.subcommands_on = kwargs.get("run", True)
        super().__init__(*args, **kwargs)

    def _given(self, prefix: str) -> bool:
        return any(a == prefix or a.startswith((prefix + "=", prefix + ".")) for a in self.raw_args)

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        logger = config.get("trainer", {}).get("logger") if hasattr(config, "get") else None
        root = config.get("trainer", {}).get("default_root_dir")
        if self._given("--trainer.default_root_dir") and not self._given("--trainer.logger") and root:
            # the shipped configs name a save_dir; a default_root_dir given alone moves the logs too
            if getattr(logger, "init_args", None) is not None and "save_dir" in logger.init_args:
                logger.init_args.save_dir = root
        self._check_ckpt_path()

    def _check_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config.get(subcommand) if subcommand else self.config
        ckpt = config.get("ckpt_path") if hasattr(config, "get") else None
        if ckpt:
            load_checkpoint(ckpt, subcommand or "fit")

    def _parse_ckpt_path(self) -> None:
        # Lightning >= 2.5 reads the checkpoint's hyper-parameters right after parsing and merges them
        # OVER the command line (a resumed run silently kept the checkpoint's temperature, width or
        # class): check the file first, then refuse a model that differs from the checkpoint's
        self._check_ckpt_path()
        self._refuse_changed_model()
        parent = getattr(super(), "_parse_ckpt_path", None)
        if parent is not None:
            parent()

    def _refuse_changed_model(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config.get(subcommand) if subcommand else self.config
        ckpt = config.get("ckpt_path") if hasattr(config, "get") else None
        model = config.get("model") if hasattr(config, "get") else None
        if not ckpt or model is None or not hasattr(model, "get"):
            return
        hparams = dict(load_checkpoint(ckpt, subcommand or "fit").get("hyper_parameters") or {})
        saved_class = hparams.pop("_class_path", None)
        hparams.pop("_instantiator", None)
        differ = []
        if saved_class and model.get("class_path") and saved_class != model.get("class_path"):
            differ.append(f"model.class_path {saved_class} (asked {model.get('class_path')})")
        asked = model.get("init_args") or {}
        for key, value in (vars(asked) if hasattr(asked, "__dict__") else dict(asked)).items():
            linked = key in ("num_channels", "num_bands")  # set from the datamodule at instantiation
            if key in hparams and not linked and value is not None and _plain(value) != _plain(hparams[key]):
                differ.append(f"model.init_args.{key} {_plain(hparams[key])} (asked {_plain(value)})")
        if differ:
            raise SystemExit(
                f"{subcommand or 'fit'}: --ckpt_path {ckpt} was trained with {'; '.join(differ)}; a resumed run keeps "
                "the checkpoint's model, so drop these options (or the config that sets them) or start a new fit "
                "without --ckpt_path"
            )

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        parser.link_arguments("data.num_channels", "model.init_args.num_channels", apply_on="instantiate")
        parser.link_arguments("data.num_bands", "model.init_args.num_bands", apply_on="instantiate")
        if not self.subcommands_on:
            # `transfer --config RUN/config.yaml`: a fit's saved config holds Trainer.fit's own arguments
            # at the top level (ckpt_path, weights_only); accepted and unused (transfer has --ckpt_path)
            for name in inspect.signature(L.Trainer.fit).parameters:
                if name not in ("self", "model", "train_dataloaders", "val_dataloaders", "datamodule"):
                    parser.add_argument(f"--{name}", type=Any, default=None, help="a fit argument, unused here")


def build_cli(args: ArgsType = None, run: bool = True) -> SCMMLightningCLI:
    quiet_third_party_noise()
    return SCMMLightningCLI(
        L.LightningModule,
        L.LightningDataModule,
        parser_class=ShortErrorParser,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_kwargs={
            "description": "SCMM pre-training and evaluation for cross-corpus EEG emotion recognition. Besides the "
            "Lightning subcommands: `prepare` builds a corpus's feature cache (python -m scmm_lightning prepare "
            "--help), `transfer` runs the fine-tuning protocol from a checkpoint (--config RUN.yaml --ckpt_path CKPT) or an "
            "exported encoder (--encoder DIR --config TARGET.yaml), `export` writes a checkpoint's encoder as a "
            "safetensors folder (--ckpt_path CKPT --out DIR), "
            "`reproduce` and `ablations` run settings and methods over seeds (--help each)."
        },
        args=args,
        run=run,
    )
