"""Exported encoders through huggingface_hub's ``ModelHubMixin`` (the optional ``hub`` extra:
``pip install "scmm_lightning[hub]"``): ``HubEncoder.from_pretrained(FOLDER_OR_REPO)``,
``encoder.save_pretrained(FOLDER)`` and ``encoder.push_to_hub(REPO)`` read and write exactly the folder
``python -m scmm_lightning export`` writes (a local folder needs no network; a repository id is
downloaded with ``snapshot_download`` and then loaded like a folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from huggingface_hub import ModelHubMixin, snapshot_download
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "scmm_lightning.model.hub needs huggingface_hub: pip install 'scmm_lightning[hub]' (or use "
        "scmm_lightning.load_encoder(FOLDER), which needs nothing more)"
    ) from err

from .pretrained import CARD_FILE, PretrainedEncoder, load_encoder, write_encoder_folder


class HubEncoder(PretrainedEncoder, ModelHubMixin, library_name="scmm_lightning", tags=["eeg", "emotion-recognition"]):
    """:class:`~scmm_lightning.model.pretrained.PretrainedEncoder` with ``from_pretrained`` /
    ``save_pretrained`` / ``push_to_hub``; ``from_pretrained`` takes ``allow_foreign_encoder`` and
    ``map_location`` like :func:`~scmm_lightning.model.pretrained.load_encoder`."""

    def __init__(self, encoder, config: dict[str, Any], card: str = "") -> None:  # noqa: ANN001
        super().__init__(encoder, config)
        self.card = card

    def _save_pretrained(self, save_directory: Path) -> None:
        config = {k: v for k, v in self.config.items() if k not in ("format", "format_version")}
        write_encoder_folder(save_directory, self.encoder, config, self.card, overwrite=True)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        allow_foreign_encoder: bool = False,
        map_location: str = "cpu",
        **unused: Any,  # the mixin passes config.json's entries too; load_encoder reads the file itself
    ) -> HubEncoder:
        folder = Path(model_id)
        if not folder.is_dir():
            folder = Path(
                snapshot_download(
                    repo_id=model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
                    local_files_only=local_files_only, token=token,
                )
            )  # fmt: skip
        loaded = load_encoder(folder, allow_foreign_encoder, map_location)
        card = (folder / CARD_FILE).read_text(encoding="utf-8") if (folder / CARD_FILE).is_file() else ""
        return cls(loaded.encoder, loaded.config, card).to(map_location).eval()
