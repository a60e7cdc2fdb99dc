"""Caption items and their collation into a :class:`CaptionBatch`, the batch of the captioning task.

A caption item is one image tensor with one encoded caption (``<start> w1 .. wn <end>``) and every
reference of its image; :func:`collate_captions` stacks images, right-pads captions with ``<pad>`` and
builds the mask (``True`` = real token, ``<start>`` and ``<end>`` included, as defined in
:mod:`vltk.types`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from vltk.errors import DataError
from vltk.types import move_to


@dataclass
class CaptionBatch:
    """A batch of images with captions (training) and all their references (evaluation).

    Attributes:
        images: ``[B, 3, H, W]`` float, already normalised by the encoder's ``transforms()``.
        captions: ``[B, T]`` long token ids: ``<start> w1 .. wn <end> <pad> ...``.
        caption_mask: ``[B, T]`` bool, ``True`` = real token (``<start>`` and ``<end>`` included).
        image_ids: ``[B]`` long, the dataset's image id (Karpathy ``cocoid`` or ``imgid``).
        references: per image, every reference caption as a raw string (for metrics).
        skipped: examples of this batch dropped because they could not be read (``on_bad_sample: skip``).
    """

    images: Tensor
    captions: Tensor
    caption_mask: Tensor
    image_ids: Tensor
    references: list[list[str]]
    skipped: int = 0

    def to(self, device: torch.device | str) -> CaptionBatch:
        moved = {f.name: move_to(getattr(self, f.name), device) for f in fields(self)}
        return CaptionBatch(**moved)

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class CaptionItem:
    """One training or evaluation example.

    Attributes:
        image: ``[3, H, W]`` float, transformed for the image encoder.
        caption: ``[T]`` long token ids, ``<start> ... <end>`` (already truncated).
        image_id: the dataset's image id.
        references: every reference caption of the image as raw text.
    """

    image: Tensor
    caption: Tensor
    image_id: int
    references: list[str]


def truncate_caption(ids: Sequence[int], max_length: int, end_id: int) -> list[int]:
    """Keep ``<start>``, at most ``max_length`` words and a final ``<end>``.

    Args:
        ids: ``<start> w1 .. wn <end>`` as produced by ``Vocabulary.encode``.
        max_length: the largest number of words kept (special tokens not counted).
        end_id: id of ``<end>`` (appended when the caption was cut).
    """
    if max_length < 1:
        raise DataError(f"max_caption_length must be >= 1, got {max_length}")
    if len(ids) <= max_length + 2:
        return list(ids)
    return [*ids[: max_length + 1], end_id]


def collate_captions(items: Sequence[CaptionItem | None], pad_id: int = 0) -> CaptionBatch:
    """Stack images, pad captions to the longest in the batch and gather ids and references.

    Args:
        items: caption items whose images share one size; ``None`` items (unreadable samples skipped by
            the dataset) are dropped and counted in ``CaptionBatch.skipped``.
        pad_id: id of ``<pad>`` (``Vocabulary.pad_id``; 0 in vltk vocabularies).
    """
    readable = [item for item in items if item is not None]  # None: skipped (data.on_bad_sample=skip)
    skipped = len(items) - len(readable)
    if items and not readable:
        raise DataError(f"every image of a batch of {len(items)} was unreadable (see the warnings above)")
    items = readable
    if not items:
        raise DataError("cannot collate an empty list of caption items")
    sizes = {tuple(item.image.shape) for item in items}
    if len(sizes) > 1:
        raise DataError(
            f"images in one batch have different sizes {sorted(sizes)}; the image transform must "
            "produce one fixed size (resize and crop)"
        )
    images = torch.stack([item.image for item in items])  # [B, 3, H, W]
    lengths = torch.tensor([item.caption.numel() for item in items], dtype=torch.long)  # [B]
    steps = int(lengths.max())
    captions = torch.full((len(items), steps), pad_id, dtype=torch.long)  # [B, T]
    for row, item in enumerate(items):
        captions[row, : item.caption.numel()] = item.caption
    caption_mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    image_ids = torch.tensor([item.image_id for item in items], dtype=torch.long)  # [B]
    return CaptionBatch(
        images=images,
        captions=captions,
        caption_mask=caption_mask,
        image_ids=image_ids,
        references=[list(item.references) for item in items],
        skipped=skipped,
    )
