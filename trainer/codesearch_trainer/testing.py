"""A tiny randomly initialised BERT with its own word-piece tokenizer, for tests and smoke runs.

Nothing is downloaded: the vocabulary is a few hundred word pieces built here, the weights are
random (seeded). ``tiny_bert(folder)`` writes an HF folder that every command accepts as a model.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD_TEXT = (
    "def return self if else for in while import from class function const let var async await "
    "read write file open close path list dict set map filter sort key value item items data "
    "parse load save json yaml text string number int float bool true false none null "
    "get set add remove delete update create find search query code line lines count sum "
    "max min first last next error raise throw try catch print log debug config user name "
    "date time url http request response retry cache size length index array object new "
    "a an the of to and or is it on by with as at be this that into all each any not "
    "merge split join strip lower upper replace format convert check valid test run start stop"
)
WORDS = _WORD_TEXT.split()


def tiny_vocab() -> list[str]:
    pieces = list(string.ascii_lowercase) + list(string.digits) + list(string.punctuation)
    cont = [f"##{c}" for c in string.ascii_lowercase + string.digits]
    seen: dict[str, None] = {}
    for tok in SPECIALS + WORDS + pieces + cont:
        seen.setdefault(tok, None)
    return list(seen)


def tiny_tokenizer(vocab: list[str] | None = None) -> Any:
    """A BERT-style (lowercasing, WordPiece, [CLS] … [SEP]) fast tokenizer over ``vocab``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocab or tiny_vocab()
    ids = {tok: i for i, tok in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
    )


def tiny_bert(folder: str | Path, *, seed: int = 0, max_length: int = 128, dropout: float = 0.1,
              num_layers: int = 2) -> Path:
    """Write a tiny random BERT (hidden 32, ``num_layers`` layers, 2 heads) + tokenizer to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    from .model import EncoderSettings, save_encoder_files

    folder = Path(folder)
    tokenizer = tiny_tokenizer()
    config = BertConfig(
        hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=2, intermediate_size=37,
        vocab_size=len(tokenizer), max_position_embeddings=max_length,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    save_encoder_files(model, tokenizer, EncoderSettings(max_length=max_length), folder)
    return folder
