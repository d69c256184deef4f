"""Exported encoders: a folder anyone can load without Lightning, this package's training code or pickle.

The folder (``python -m scmm_lightning export`` writes it; :func:`load_encoder` reads it)::

    model.safetensors   the encoder's state_dict (safetensors: tensors only, nothing executable)
    config.json         what the encoder is and expects (see below)
    README.md           model card: what it was trained on, its transfer results, the licence note

``config.json`` holds ``format`` / ``format_version``; ``encoder`` (``class_path``, ``init_args``:
enough to rebuild the module); ``input`` (electrodes in order, number of bands, how the DE windows
were made: bands in Hz, window length and step, smoothing, and the normalisation with its
statistics); ``pretraining`` (method class and hyper-parameters, seed, epochs and steps);
``package`` (versions). Importing this module imports torch and safetensors, never Lightning.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..corpora.base import CorpusError
from ..corpora.cache import current_umask
from ..corpora.normalization import normalize

FORMAT = "scmm_lightning-encoder"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
PACKAGE_ENCODER_MODULE = "scmm_lightning.model"
"""Encoder classes a folder may name without ``allow_foreign_encoder``: those this package exports
from :mod:`scmm_lightning.model` (a folder from elsewhere could otherwise name any importable class)."""


class EncoderFolderError(CorpusError):
    """An exported-encoder folder that cannot be used as it is; the message names the file and the fix.
    (A :class:`CorpusError`: the command line reports it in one line, exit status 2.)"""


def class_path(obj: type) -> str:
    """``module.Name``, with the package's public module for its own encoders (``scmm_lightning.model.CNNEncoder``)."""
    module = obj.__module__
    if module.startswith(PACKAGE_ENCODER_MODULE + "."):
        public = importlib.import_module(PACKAGE_ENCODER_MODULE)
        if getattr(public, obj.__qualname__, None) is obj:
            module = PACKAGE_ENCODER_MODULE
    return f"{module}.{obj.__qualname__}"


def json_value(value: Any, strict: bool = True) -> Any:
    """``value`` as plain JSON (tuples as lists, numpy scalars as numbers); anything else is an error,
    or with ``strict=False`` its text (hyper-parameters recorded for people to read)."""
    if isinstance(value, (tuple, list)):
        return [json_value(v, strict) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_value(v, strict) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if not strict:
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def encoder_spec(encoder: nn.Module) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` that rebuild ``encoder``: each constructor argument read from the
    attribute of the same name (the convention :class:`~scmm_lightning.model.CNNEncoder` follows), else
    its default. An argument with neither cannot be recorded: the encoder must store it."""
    cls = type(encoder)
    args: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if hasattr(encoder, name):
            value = getattr(encoder, name)
        elif param.default is not param.empty:
            value = param.default
        else:
            raise TypeError(
                f"encoder {class_path(cls)}: constructor argument {name!r} is not stored on the module; set "
                f"self.{name} in its __init__ so the encoder can be exported"
            )
        try:
            args[name] = json_value(value)
        except TypeError as err:
            raise TypeError(f"encoder {class_path(cls)}: argument {name!r} cannot be exported ({err})") from None
    return {"class_path": class_path(cls), "init_args": args}


def encoder_class(path: str, allow_foreign_encoder: bool = False, where: str = "") -> type[nn.Module]:
    """The class a folder names; one of the package's encoders unless ``allow_foreign_encoder``."""
    module, _, name = path.rpartition(".")
    if module != PACKAGE_ENCODER_MODULE and not allow_foreign_encoder:
        raise EncoderFolderError(
            f"{where}: encoder class {path!r} is not one of this package's encoders ({PACKAGE_ENCODER_MODULE}.*); "
            "loading it would import and run that module's code: pass allow_foreign_encoder=True if you trust it"
        )
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise EncoderFolderError(f"{where}: encoder class {path!r} cannot be imported ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise EncoderFolderError(f"{where}: {path!r} is not a torch.nn.Module class")
    return cls


def build_encoder(spec: Mapping[str, Any], allow_foreign_encoder: bool = False, where: str = "") -> nn.Module:
    """A freshly initialised encoder from a folder's ``encoder`` entry."""
    cls = encoder_class(str(spec.get("class_path")), allow_foreign_encoder, where)
    try:
        return cls(**dict(spec.get("init_args") or {}))
    except TypeError as err:
        raise EncoderFolderError(
            f"{where}: encoder arguments {spec.get('init_args')} do not fit {cls.__name__} ({err})"
        ) from None


class PretrainedEncoder(nn.Module):
    """An exported encoder with its input contract: ``forward`` is the encoder on normalised windows;
    :meth:`embed` takes DE windows as the pre-training corpus gave them and applies the stored
    normalisation first.

    Attributes:
        encoder: the network, ``(B, C, F) -> (B, D)``.
        config: the folder's ``config.json`` as a dict.
        electrodes: input electrode names, in order (C).
        num_bands: bands per electrode (F).
        out_features: D.
    """

    def __init__(self, encoder: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.out_features = int(getattr(encoder, "out_features", 0))
        norm = config["input"]["normalization"]
        self.normalization_kind: str = norm["kind"]
        has_stats = norm.get("shift") is not None and norm.get("scale") is not None
        shape = (len(self.electrodes), self.num_bands)
        self.register_buffer(
            "shift", torch.tensor(norm["shift"], dtype=torch.float32) if has_stats else torch.zeros(shape)
        )
        self.register_buffer(
            "scale", torch.tensor(norm["scale"], dtype=torch.float32) if has_stats else torch.ones(shape)
        )
        self.has_statistics = has_stats

    @property
    def electrodes(self) -> list[str]:
        return list(self.config["input"]["electrodes"])

    @property
    def num_bands(self) -> int:
        return int(self.config["input"]["num_bands"])

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def normalize(self, de_windows: Tensor | np.ndarray, subjects: Tensor | np.ndarray | None = None) -> Tensor:
        """The pre-training corpus's normalisation applied to raw DE windows ``(N, C, F)``: its stored
        training-split statistics (``minmax`` / ``zscore``); per subject of ``subjects`` (all windows as
        one subject when ``None``) for ``subject_*``; fitted on all the windows given where no single
        set of statistics exists (several source corpora, each normalised on its own); nothing for
        ``none``. The same function the datamodules normalise with."""
        x = torch.as_tensor(de_windows, dtype=torch.float32)
        expected = (len(self.electrodes), self.num_bands)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"de_windows of shape {tuple(x.shape)}: this encoder takes (N, {expected[0]}, {expected[1]}) DE windows "
                f"(electrodes {', '.join(self.electrodes)}; {expected[1]} bands)"
            )
        kind = self.normalization_kind
        if kind == "none":
            return x
        if self.has_statistics and not kind.startswith("subject_"):
            return (x - self.shift.to(x.device)) / self.scale.to(x.device)
        kind = kind if kind in ("minmax", "zscore", "subject_minmax", "subject_zscore") else "zscore"  # mixed sources
        values = x.detach().cpu().numpy()
        groups = np.zeros(len(values), np.int64) if subjects is None else np.asarray(subjects)
        out, _ = normalize(values, groups, np.ones(len(values), dtype=bool), kind)  # type: ignore[arg-type]
        return torch.from_numpy(out).to(x.device)

    @torch.no_grad()
    def embed(
        self, de_windows: Tensor | np.ndarray, subjects: Tensor | np.ndarray | None = None, batch_size: int = 4096
    ) -> Tensor:
        """Representations ``(N, D)`` of raw DE windows ``(N, C, F)``: :meth:`normalize`, then the
        encoder in eval mode (BatchNorm running statistics), in batches of ``batch_size``."""
        x = self.normalize(de_windows, subjects)
        was_training = self.training
        self.eval()
        try:
            device = next((p.device for p in self.encoder.parameters()), x.device)
            return torch.cat([self.encoder(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)])
        finally:
            self.train(was_training)


def read_config(folder: str | Path) -> dict[str, Any]:
    """A folder's ``config.json``, checked for the format; errors name the file."""
    path = Path(folder) / CONFIG_FILE
    if not Path(folder).is_dir():
        raise EncoderFolderError(
            f"{folder}: not a folder; give the folder `python -m scmm_lightning export --out` wrote"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EncoderFolderError(
            f"{path}: missing; an exported encoder folder holds {CONFIG_FILE} and {WEIGHTS_FILE}"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EncoderFolderError(f"{path}: not valid JSON ({err}); re-export the encoder") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise EncoderFolderError(
            f"{path}: not an exported scmm_lightning encoder (format {config.get('format') if isinstance(config, dict) else None!r}, expected {FORMAT!r})"
        )
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise EncoderFolderError(
            f"{path}: format_version {config['format_version']} is newer than this package reads ({FORMAT_VERSION}); upgrade scmm_lightning"
        )
    for key in ("encoder", "input"):
        if not isinstance(config.get(key), dict):
            raise EncoderFolderError(f"{path}: entry {key!r} missing; re-export the encoder")
    return config


def load_encoder(
    folder: str | Path, allow_foreign_encoder: bool = False, map_location: str | torch.device = "cpu"
) -> PretrainedEncoder:
    """The encoder of an exported folder as a plain ``torch.nn.Module`` in eval mode (no Lightning, no
    network). Refused, in one line naming the file: a class outside this package's encoders (unless
    ``allow_foreign_encoder``), weights that do not match the config's architecture."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_config(folder)
    where = str(folder / CONFIG_FILE)
    encoder = build_encoder(config["encoder"], allow_foreign_encoder, where)
    weights_path = folder / WEIGHTS_FILE
    try:
        weights = load_file(weights_path, device=str(map_location))
    except FileNotFoundError:
        raise EncoderFolderError(f"{weights_path}: missing; re-export the encoder") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise EncoderFolderError(
            f"{weights_path}: not a readable safetensors file ({err}); re-export the encoder"
        ) from None
    check_weights(encoder, weights, weights_path)
    encoder.load_state_dict(weights)
    out = PretrainedEncoder(encoder, config).to(map_location)
    return out.eval()


def state_mismatch(own: Mapping[str, Tensor], given: Mapping[str, Tensor]) -> str:
    """How a state_dict ``given`` fails to fit a module's own: missing and unexpected names and
    differing shapes (the first few of each), or ``""`` when it fits."""
    missing = sorted(set(own) - set(given))
    extra = sorted(set(given) - set(own))
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in given and tuple(given[k].shape) != tuple(v.shape)
    ]
    parts = (
        f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}" if missing else "",
        f"unexpected {extra[:3]}{' ...' if len(extra) > 3 else ''}" if extra else "",
        f"shapes {shapes[:2]}{' ...' if len(shapes) > 2 else ''}" if shapes else "",
    )
    return "; ".join(p for p in parts if p)


def check_weights(encoder: nn.Module, weights: Mapping[str, Tensor], path: Path) -> None:
    """Same names and shapes as the architecture, else one line naming the file and what differs."""
    what = state_mismatch(encoder.state_dict(), weights)
    if what:
        raise EncoderFolderError(
            f"{path}: weights do not match the encoder {CONFIG_FILE} describes ({what}); the folder's files come "
            "from different exports: re-export it"
        )


def check_electrodes(
    config: Mapping[str, Any], names: list[str] | tuple[str, ...], what: str, folder: str | Path
) -> None:
    """The corpus's electrodes (``names``, in order) must be the encoder's, in its order: an error naming
    the electrodes the corpus lacks, else the ``channels`` list that puts them in the encoder's order."""
    from ..corpora.channels import canonical

    wanted = [canonical(n) for n in config["input"]["electrodes"]]
    have = [canonical(n) for n in names]
    if have == wanted:
        return
    lacking = [n for n in wanted if n not in have]
    if lacking:
        raise EncoderFolderError(
            f"{what} lacks electrodes {lacking} that the encoder {folder} takes as input ({len(wanted)}: {', '.join(wanted)}); "
            "use a corpus recorded with them (or re-pretrain on the electrodes you have)"
        )
    raise EncoderFolderError(
        f"{what} has {len(have)} electrodes, the encoder {folder} takes {len(wanted)} in its own order: set the "
        f"corpus's `channels: [{', '.join(wanted)}]`"
    )


def write_encoder_folder(
    out: str | Path, encoder: nn.Module, config: dict[str, Any], card: str, overwrite: bool = False
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` into ``out``: built whole in a
    temporary sibling folder first, then each file renamed into place, so an interrupted export leaves
    no half-written file. An existing export in ``out`` is replaced only with ``overwrite``; other files
    in ``out`` are never touched."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EncoderFolderError(f"{out}: exists and is not a folder; choose another --out")
    present = [n for n in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE) if (out / n).exists()]
    if present and not overwrite:
        raise EncoderFolderError(f"{out}: already holds {', '.join(present)}; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    json.dumps(config)  # every value plain JSON before anything is written
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
        save_file(state, staging / WEIGHTS_FILE, metadata={"format": "pt"})
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
        mode = 0o777 & ~current_umask()
        os.chmod(staging, mode)
        for f in staging.iterdir():
            os.chmod(f, mode & 0o666)
        if not out.exists():
            staging.rename(out)
            return out
        for name in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE):  # config.json last but one: weights first
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
