"""Load a trained captioner from a ``vltk train`` checkpoint in plain PyTorch (no Lightning needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from vltk.decoding import BeamResult
from vltk.errors import VltkError
from vltk.models.captioner import Captioner, build_captioner
from vltk.text import Vocabulary

STATE_PREFIX = "model."


@dataclass
class PretrainedCaptioner:
    """A captioner ready for inference: the model, its vocabulary and its image preprocessing."""

    model: Captioner
    vocab: Vocabulary

    @torch.no_grad()
    def caption(
        self, images: Sequence[Image.Image], *, beam_size: int = 3, max_length: int = 20
    ) -> list[str]:
        """Captions for PIL images (any size/mode is converted by the encoder's transforms)."""
        transform = self.model.encoder.transforms()
        batch = torch.stack([transform(image.convert("RGB")) for image in images])  # [B, 3, H, W]
        result = self.model.generate(
            self.model.encode(batch), method="beam", beam_size=beam_size, max_length=max_length
        )
        best = result.best() if isinstance(result, BeamResult) else result
        return [self.vocab.decode(row[:n]) for row, n in zip(best.tokens.tolist(), best.lengths.tolist())]


def load_captioner(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> PretrainedCaptioner:
    """Rebuild the captioner stored in a ``vltk train captioning`` checkpoint, in eval mode."""
    path = Path(checkpoint)
    if not path.is_file():
        raise VltkError(f"checkpoint not found: {path}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    try:
        config = payload["hyper_parameters"]["config"]
        payload["hyper_parameters"]["vocab"]
    except KeyError as error:
        raise VltkError(f"{path} is not a vltk checkpoint (missing {error})") from None
    if config.get("task") != "captioning":
        raise VltkError(f"{path} holds a '{config.get('task')}' model, not a captioner")
    model, vocab = captioner_from_parts(
        config, payload["hyper_parameters"]["vocab"], payload["state_dict"], path
    )
    return PretrainedCaptioner(model, vocab)


def captioner_from_parts(
    config: dict, vocab_json: str, state_dict: dict[str, torch.Tensor], source: str | Path
) -> tuple[Captioner, Vocabulary]:
    """Build the captioner a config describes and load the ``model.*`` weights of a system state dict."""
    vocab = Vocabulary.from_json(vocab_json)
    model = build_captioner(
        config["model"],
        vocab_size=len(vocab),
        start_id=vocab.start_id,
        end_id=vocab.end_id,
        pad_id=vocab.pad_id,
    )
    state = {k[len(STATE_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(STATE_PREFIX)}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise VltkError(f"{source}: the weights do not fit the configured model ({error})") from None
    return model.eval(), vocab
