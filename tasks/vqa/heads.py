"""Answer heads of the VQA models: how image features and a question vector become answer logits.

Each head takes the image features of the *distinct* images of a batch (``grid [U, N, D]``, ``pooled
[U, D]``), ``image_index [B]`` saying which image each question is about, and the question encoding
(``[B, H]``), and returns ``(logits [B, A], attention [B, G, N] or None)``. Dimensions ``D``, ``H`` and
``A`` are wired by :func:`vltk.tasks.vqa.model.build_vqa_model` from the parts just built.

* :class:`PointwiseFusionHead` -- Agrawal/Antol et al. 2015, *VQA: Visual Question Answering*, "deeper LSTM
  Q + norm I": the L2-normalised pooled image and the question are each projected to a common space with
  tanh, multiplied element-wise, then an MLP classifies.
* :class:`GlimpseAttentionHead` -- Kazemi & Elqursh 2017, *Show, Ask, Attend, and Answer*: the question
  attends over the L2-normalised image grid with several glimpses (softmax over regions per glimpse); the
  glimpses and the question are concatenated and an MLP classifies.
* :class:`StackedAttentionHead` -- Yang et al. 2016, *Stacked Attention Networks for Image Question
  Answering*: a query starts as the question and is refined by ``layers`` attention hops
  ``u_k = u_{k-1} + sum_i p_i v_i``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vltk.errors import ConfigError


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")


def _masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over regions (dim 1 of ``[B, N, G]``); ``mask [B, N]`` True = real region."""
    if mask is not None:
        scores = scores.masked_fill(~mask[:, :, None], float("-inf"))  # [B, N, G]
    return scores.softmax(dim=1)  # [B, N, G]


class PointwiseFusionHead(nn.Module):
    """ "deeper LSTM Q + norm I" (Antol et al. 2015): tanh projections, element-wise product, MLP.

    Args:
        image_dim: ``D`` (wired from the image encoder).
        question_dim: ``H`` (wired from the text encoder).
        num_answers: ``A`` (wired from the answer vocabulary).
        fusion_dim: the common space of image and question (1024 in the paper).
        hidden_dim: the classifier's hidden layer (1000 in the paper).
        dropout: before each classifier layer.
    """

    def __init__(
        self,
        image_dim: int,
        question_dim: int,
        num_answers: int,
        *,
        fusion_dim: int = 1024,
        hidden_dim: int = 1000,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        _positive("fusion_dim", fusion_dim)
        _positive("hidden_dim", hidden_dim)
        self.image_proj = nn.Linear(image_dim, fusion_dim)
        self.question_proj = nn.Linear(question_dim, fusion_dim)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(fusion_dim, hidden_dim),
            nn.Tanh(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_answers),
        )

    def forward(
        self, grid: Tensor, pooled: Tensor, mask: Tensor | None, image_index: Tensor, question: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        image = torch.tanh(self.image_proj(F.normalize(pooled, dim=-1)))  # [U, F]
        fused = image.index_select(0, image_index) * torch.tanh(self.question_proj(question))  # [B, F]
        return self.classifier(fused), None  # [B, A]


class GlimpseAttentionHead(nn.Module):
    """Question-guided multi-glimpse attention over the image grid (Kazemi & Elqursh 2017).

    Args:
        image_dim: ``D`` (wired).
        question_dim: ``H`` (wired).
        num_answers: ``A`` (wired).
        glimpses: attention distributions ``G`` (2 in the paper).
        attention_dim: hidden size of the attention MLP (512 in the paper).
        hidden_dim: the classifier's hidden layer (1024 in the paper).
        dropout: on the classifier input and hidden layer, and on the attention's hidden layer.
        normalize_image: L2-normalise each region as the paper does for pretrained ResNet features; a
            CNN trained from scratch learns faster without it (its BatchNorm already scales features).
    """

    def __init__(
        self,
        image_dim: int,
        question_dim: int,
        num_answers: int,
        *,
        glimpses: int = 2,
        attention_dim: int = 512,
        hidden_dim: int = 1024,
        dropout: float = 0.5,
        normalize_image: bool = True,
    ) -> None:
        super().__init__()
        self.normalize_image = normalize_image
        for name, value in (("glimpses", glimpses), ("attention_dim", attention_dim),
                            ("hidden_dim", hidden_dim)):  # fmt: skip
            _positive(name, value)
        # The paper's 1x1 convolution over [v; q] is split into an image part, computed once per image,
        # and a question part, computed once per question.
        self.image_att = nn.Linear(image_dim, attention_dim)
        self.question_att = nn.Linear(question_dim, attention_dim, bias=False)
        self.att_dropout = nn.Dropout(dropout)
        self.att_out = nn.Linear(attention_dim, glimpses)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(glimpses * image_dim + question_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_answers),
        )
        self.glimpses = glimpses

    def forward(
        self, grid: Tensor, pooled: Tensor, mask: Tensor | None, image_index: Tensor, question: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        regions = F.normalize(grid, dim=-1) if self.normalize_image else grid  # [U, N, D]
        keys = self.image_att(regions)  # [U, N, A']
        per_question = regions.index_select(0, image_index)  # [B, N, D]
        hidden = F.relu(
            keys.index_select(0, image_index) + self.question_att(question)[:, None, :]
        )  # [B, N, A']
        scores = self.att_out(self.att_dropout(hidden))  # [B, N, G]
        region_mask = mask.index_select(0, image_index) if mask is not None else None  # [B, N]
        alpha = _masked_softmax(scores, region_mask)  # [B, N, G]
        glimpses = torch.bmm(alpha.transpose(1, 2), per_question)  # [B, G, D]
        features = torch.cat([glimpses.flatten(1), question], dim=-1)  # [B, G*D + H]
        return self.classifier(features), alpha.transpose(1, 2)  # [B, A], [B, G, N]


class StackedAttentionHead(nn.Module):
    """Stacked attention (Yang et al. 2016): ``layers`` hops refine a query that starts as the question.

    Args:
        image_dim: ``D`` (wired).
        question_dim: ``H`` (wired).
        num_answers: ``A`` (wired).
        layers: attention hops ``K`` (2 in the paper).
        model_dim: the common size of regions and query ``d`` (regions and question are projected to it).
        attention_dim: hidden size ``k`` of each attention layer.
        dropout: on the attention hidden layer and before the classifier.
    """

    def __init__(
        self,
        image_dim: int,
        question_dim: int,
        num_answers: int,
        *,
        layers: int = 2,
        model_dim: int = 512,
        attention_dim: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        for name, value in (("layers", layers), ("model_dim", model_dim), ("attention_dim", attention_dim)):
            _positive(name, value)
        self.image_proj = nn.Linear(image_dim, model_dim)
        self.question_proj = nn.Linear(question_dim, model_dim)
        self.image_att = nn.ModuleList(nn.Linear(model_dim, attention_dim) for _ in range(layers))
        self.query_att = nn.ModuleList(nn.Linear(model_dim, attention_dim) for _ in range(layers))
        self.att_out = nn.ModuleList(nn.Linear(attention_dim, 1) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(model_dim, num_answers)

    def forward(
        self, grid: Tensor, pooled: Tensor, mask: Tensor | None, image_index: Tensor, question: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        regions = torch.tanh(self.image_proj(F.normalize(grid, dim=-1)))  # [U, N, d]
        query = torch.tanh(self.question_proj(question))  # [B, d]
        region_mask = mask.index_select(0, image_index) if mask is not None else None  # [B, N]
        per_question = regions.index_select(0, image_index)  # [B, N, d]
        maps = []
        for image_att, query_att, att_out in zip(self.image_att, self.query_att, self.att_out):
            keys = image_att(regions).index_select(0, image_index)  # [B, N, k]
            hidden = torch.tanh(keys + query_att(query)[:, None, :])  # [B, N, k]
            alpha = _masked_softmax(att_out(self.dropout(hidden)), region_mask)  # [B, N, 1]
            query = query + (alpha * per_question).sum(dim=1)  # [B, d]
            maps.append(alpha.squeeze(-1))  # [B, N]
        return self.classifier(self.dropout(query)), torch.stack(maps, dim=1)  # [B, A], [B, K, N]
