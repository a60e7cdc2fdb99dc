"""Tokenisation and vocabularies (Hugging Face ``tokenizers``, saved as ``tokenizer.json``)."""

from vltk.text.vocab import SPECIAL_TOKENS, Vocabulary, tokenize

__all__ = ["SPECIAL_TOKENS", "Vocabulary", "tokenize"]
