"""Pieces shared by the tiny twins: a tokenizer trained locally on a small English corpus.

A twin's tokenizer must carry its family's special tokens (at ids its config points to) and chat
template, so the family's real processor classes work unchanged; its vocabulary only needs to cover
the words the probe videos and prompts use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Words of the prompts, the probe videos' reference sentences and ordinary captions.
_CORPUS_WORDS = """
a an the this that these those is are was were be been being it its in on at of to from with and or but
video clip frame frames second seconds scene image picture shows showing describe description caption
what happens happening in one sentence detail detailed briefly each moment time start end first then next
object objects shape shapes circle square triangle rectangle star dot ball box
red green blue yellow purple orange white black grey gray pink brown cyan colour color colours colors
moves moving move towards toward left right up down top bottom centre center middle corner side across
appears appear disappears disappear changes change turns turn becomes become stays stay still static
background plain dark light bright small large big two three several many some no none there here
person people man woman room office modern environment featuring contemporary furniture table desk chair
walking standing sitting looking talking holding camera view close far near inside outside street car
user assistant system you are helpful please answer question answer yes no
""".split()


def corpus(repeat: int = 4) -> list[str]:
    """Deterministic training lines: the word list plus simple sentences built from it."""
    words = _CORPUS_WORDS
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    sentences = [
        "A red circle moves from the left towards the centre on a grey background.",
        "A blue square appears at the top right.",
        "The green triangle changes colour from green to yellow.",
        "The yellow circle disappears.",
        "Describe what happens in this video in one sentence.",
        "A static scene with a white square and a purple circle.",
    ]
    return (lines + sentences) * repeat


def train_tokenizer(
    special_tokens: list[str],
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    pad_token: str | None = None,
    unk_token: str | None = None,
    chat_template: str | None = None,
    vocab_size: int = 600,
    extra_kwargs: dict[str, Any] | None = None,
    byte_level: bool = True,
    register_special: bool = True,
    lines: list[str] | None = None,
) -> Any:
    """Train a small BPE tokenizer; special tokens come first, in the order given (ids 0..n-1).

    `register_special=False` keeps the markers as plain vocabulary entries: BLIP-2's processor breaks
    when `<image>` is registered as an extra special token. `lines` replaces the default corpus (the trained
    twins train theirs on their own sentences). Returns a transformers fast tokenizer
    (TokenizersBackend) ready for a family's processor.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    named = [t for t in (unk_token, pad_token, bos_token, eos_token) if t]
    ordered = list(dict.fromkeys(named + list(special_tokens)))
    if byte_level:
        backend = Tokenizer(models.BPE(unk_token=None))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        backend = Tokenizer(models.BPE(unk_token=unk_token))
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        alphabet = []
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=ordered, initial_alphabet=alphabet, show_progress=False
    )
    backend.train_from_iterator(corpus() if lines is None else lines, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=unk_token,
        **(extra_kwargs or {}),
    )
    # Register the family's markers as special so decode(skip_special_tokens=True) drops them.
    markers = [t for t in special_tokens if t not in named]
    if register_special and markers:
        tokenizer.add_special_tokens({"additional_special_tokens": markers}, replace_extra_special_tokens=False)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def save_json(path: Path, obj: Any) -> None:
    import json

    path.write_text(json.dumps(obj, indent=2) + "\n")
