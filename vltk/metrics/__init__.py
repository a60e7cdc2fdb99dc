"""Evaluation metrics: pure Python/numpy/torch, no Java.

Caption metrics (COCO definitions, equal to ``pycocoevalcap`` to 1e-6): BLEU-1..4, ROUGE-L, CIDEr-D.
"""

from vltk.metrics.bleu import bleu_scores, corpus_bleu
from vltk.metrics.caption import (
    METRIC_NAMES,
    CaptionMetrics,
    CaptionRecord,
    CaptionScores,
    merge_records,
    score_captions,
    score_captions_detailed,
    score_tokenized,
)
from vltk.metrics.caption_tokenizer import PUNCTUATIONS, ptb_tokenize, tokenize_caption
from vltk.metrics.cider import cider_d_scores, corpus_cider_d
from vltk.metrics.navigation import NAVIGATION_METRIC_NAMES, NavigationMetrics, navigation_scores
from vltk.metrics.rouge import corpus_rouge_l, lcs_length, rouge_l, rouge_l_scores

__all__ = [
    "METRIC_NAMES",
    "NAVIGATION_METRIC_NAMES",
    "NavigationMetrics",
    "navigation_scores",
    "PUNCTUATIONS",
    "CaptionMetrics",
    "CaptionRecord",
    "CaptionScores",
    "bleu_scores",
    "cider_d_scores",
    "corpus_bleu",
    "corpus_cider_d",
    "corpus_rouge_l",
    "lcs_length",
    "merge_records",
    "ptb_tokenize",
    "rouge_l",
    "rouge_l_scores",
    "score_captions",
    "score_captions_detailed",
    "score_tokenized",
    "tokenize_caption",
]
