"""Evaluation metrics: pure Python/numpy/torch, no Java.

Caption metrics (COCO definitions, equal to ``pycocoevalcap`` to 1e-6): BLEU-1..4, ROUGE-L, CIDEr-D; METEOR
through COCO's Java scorer when Java is installed; readers that check COCO results / references files.
Language-model metrics: bits per character (symbol) and perplexity.
R2R navigation (R2R eval.py, r4r's dtw.py, cls.py): NE, OSR, SR, TL, SPL, nDTW, SDTW, CLS: vltk.metrics.r2r.
VQA accuracy (vqaEval.py step for step, its head or earlier rule; exact match for one-answer splits):
vltk.metrics.vqa.
"""

from vltk.metrics.bleu import bleu_scores, corpus_bleu
from vltk.metrics.caption import (
    METRIC_NAMES,
    CaptionMetrics,
    CaptionRecord,
    CaptionScores,
    add_meteor,
    merge_records,
    score_captions,
    score_captions_detailed,
    score_texts,
    score_tokenized,
)
from vltk.metrics.caption_files import (
    CaptionReferences,
    load_caption_files,
    parse_predictions,
    parse_references,
)
from vltk.metrics.caption_tokenizer import PUNCTUATIONS, coco_caption_text, ptb_tokenize, tokenize_caption
from vltk.metrics.cider import cider_d_scores, corpus_cider_d
from vltk.metrics.lm import LanguageModelMetrics, bits_per_symbol, perplexity
from vltk.metrics.meteor import SPICE_NOTE, MeteorUnavailable, meteor_scores, meteor_unavailable_reason
from vltk.metrics.navigation import NAVIGATION_METRIC_NAMES, NavigationMetrics, navigation_scores
from vltk.metrics.r2r import R2R_METRIC_NAMES, R2RMetrics, R2RRecord, score_episode, score_r2r
from vltk.metrics.rouge import (
    corpus_rouge_l,
    lcs_length,
    rouge_l,
    rouge_l_scores,
    rouge_l_text_scores,
    rouge_tokens,
)
from vltk.metrics.vqa import (
    VQA_RULES,
    VqaMetrics,
    VqaRecord,
    VqaScores,
    exact_match,
    normalize_answer,
    score_vqa_records,
    vqa_accuracy,
)

__all__ = [
    "VQA_RULES",
    "VqaMetrics",
    "VqaRecord",
    "VqaScores",
    "exact_match",
    "normalize_answer",
    "score_vqa_records",
    "vqa_accuracy",
    "METRIC_NAMES",
    "NAVIGATION_METRIC_NAMES",
    "NavigationMetrics",
    "navigation_scores",
    "R2R_METRIC_NAMES",
    "R2RMetrics",
    "R2RRecord",
    "score_episode",
    "score_r2r",
    "PUNCTUATIONS",
    "SPICE_NOTE",
    "CaptionMetrics",
    "CaptionRecord",
    "CaptionReferences",
    "CaptionScores",
    "MeteorUnavailable",
    "add_meteor",
    "load_caption_files",
    "meteor_scores",
    "meteor_unavailable_reason",
    "parse_predictions",
    "parse_references",
    "LanguageModelMetrics",
    "bits_per_symbol",
    "bleu_scores",
    "coco_caption_text",
    "cider_d_scores",
    "corpus_bleu",
    "corpus_cider_d",
    "corpus_rouge_l",
    "lcs_length",
    "merge_records",
    "perplexity",
    "ptb_tokenize",
    "rouge_l",
    "rouge_l_scores",
    "rouge_l_text_scores",
    "rouge_tokens",
    "score_captions",
    "score_captions_detailed",
    "score_texts",
    "score_tokenized",
    "tokenize_caption",
]
