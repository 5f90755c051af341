"""keras-hub's byte-level BPE tokenizers, splitting text as the checkpoint's own tokenizer.

A byte-level BPE checkpoint (GPT-2, Llama 3, SmolLM2) was trained on the
token ids of its Hugging Face `tokenizer.json`: added tokens (`<|im_end|>`)
matched in the raw text, the rest pre-split by a regex with a look-ahead,
then merged. keras-hub's `BytePairTokenizer` merges the same way but splits
differently: in graphs it approximates the look-ahead, which RE2 lacks
("\\n\\nI" becomes "\\n\\n", "I" where the checkpoint reads "\\n", "\\n",
"I"), and called eagerly it runs Llama 3's pattern for every checkpoint.
Training, evaluation, `generate` and the export then see other ids than the
checkpoint was trained on (Tiny Shakespeare's perplexity 65.9 instead of 53.0
under SmolLM2). keras-hub has no switch for the split, hence these
subclasses. They split with `byte_level_split` (exact, TF ops, so the export
still runs on TF Serving), in graphs and eagerly alike, and merge with
keras-hub's BPE.

Added tokens in user text are the tokens they name, as in the reference
tokenizer and `transformers` (so a chat template that writes `<|im_end|>`
gets the end-of-turn token): text that must not act as a control token has
to be escaped before it reaches the model.

Example:

>>> import keras_hub
>>> vocab = {"<|endoftext|>": 0, "\\u010a": 1, "I": 2, "\\u010a\\u010a": 3}
>>> plain = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=["\\u010a \\u010a"])
>>> tokenizer = HfBytePairTokenizer.like(plain, pattern="gpt2")
>>> [int(i) for i in plain("\\n\\nI")], [int(i) for i in tokenizer("\\n\\nI")]
([3, 2], [1, 1, 2])
"""

import re

import keras
import keras_hub
import tensorflow as tf
import tensorflow_text as tf_text
from absl import logging

from tftransfer import compat
from tftransfer.text import byte_level_split, pre_tokenizers


class HfBytePairTokenizer:
    """What `HfGPT2Tokenizer` and `HfLlama3Tokenizer` add to their keras-hub class.

    Args:
        pattern: the split pattern's name, `"gpt2"` or `"llama3"`
            (`byte_level_split.PATTERNS`).
        split_digits: every digit a piece of its own first (SmolLM2).
        added_tokens: vocabulary tokens matched in the raw text before the
            split (None: the tokenizer's special tokens).
        **kwargs: as for the keras-hub class.
    """

    def __init__(self, *args, pattern="gpt2", split_digits=False, added_tokens=None, **kwargs):
        super().__init__(*args, **kwargs)
        if pattern not in byte_level_split.PATTERNS:
            raise ValueError(f"pattern: {pattern!r} is none of {sorted(byte_level_split.PATTERNS)}")
        self.pattern = pattern
        self.split_digits = bool(split_digits)
        added = self.special_tokens if added_tokens is None else added_tokens
        # Longest first: the regex alternation then matches as the
        # reference's leftmost-longest search does.
        self.added_tokens = sorted(set(added), key=lambda t: (-len(t), t))
        spaced = [t for t in self.added_tokens if " " in t]
        if spaced:
            raise ValueError(f"added_tokens: {spaced[0]!r} holds a space, which BPE cannot keep")
        # One path, eager or traced: keras-hub's eager one splits otherwise.
        self._allow_python_workflow = False

    @classmethod
    def like(cls, tokenizer, pattern, split_digits=False, added_tokens=None):
        """`tokenizer`'s vocabulary, merges and options, split as the reference does.

        Args:
            tokenizer: a keras-hub `GPT2Tokenizer` or `Llama3Tokenizer`.
            pattern, split_digits, added_tokens: as for the class.
        """
        for subclass in (HfGPT2Tokenizer, HfLlama3Tokenizer):
            plain = subclass.__bases__[1]
            if isinstance(tokenizer, plain):
                config = {**plain_config(tokenizer), "pattern": pattern}
                config.update(split_digits=split_digits, added_tokens=added_tokens)
                out = subclass.from_config(config)
                out.chat_template = getattr(tokenizer, "chat_template", None)
                return out
        raise TypeError(f"no exact split for {type(tokenizer).__name__}")

    def as_keras_hub(self):
        """The plain keras-hub tokenizer (keras-hub's own split), for presets keras-hub loads."""
        return type(self).__bases__[1].from_config(plain_config(self))

    def settings(self):
        """What a plain keras-hub preset cannot record: the split and the added tokens."""
        return {
            "pattern": self.pattern,
            "split_digits": self.split_digits,
            "added_tokens": list(self.added_tokens),
        }

    def _pre_tokenize(self, texts):
        """`[texts]` -> (`[texts, (pre-tokens)]`, `[texts, (is an added token)]`)."""
        if self.added_tokens:
            added = "|".join(re.escape(t) for t in self.added_tokens)
            parts = tf_text.regex_split(texts, added, added)
            flat = parts.flat_values
            is_added = tf.reduce_any(tf.equal(flat[:, None], self.added_tokens), axis=1)
        else:
            parts = tf.RaggedTensor.from_row_lengths(texts, tf.ones_like(texts, tf.int64))
            flat = parts.flat_values
            is_added = tf.zeros_like(flat, tf.bool)
        split = byte_level_split.split(flat, self.pattern, self.split_digits)
        # Each part is either an added token, kept whole, or text, split: two
        # ragged rows of which one is empty, joined.
        one = tf.ones_like(flat, tf.int64)
        whole = tf.ragged.boolean_mask(
            tf.RaggedTensor.from_row_lengths(flat, one),
            tf.RaggedTensor.from_row_lengths(is_added, one),
        )
        split = tf.ragged.boolean_mask(
            split, split.with_flat_values(tf.repeat(~is_added, split.row_lengths()))
        )
        pieces = tf.concat([whole, split], axis=1)
        flags = tf.concat([tf.ones_like(whole, tf.bool), tf.zeros_like(split, tf.bool)], axis=1)
        row_splits = tf.gather(pieces.row_splits, parts.row_splits)
        return (
            tf.RaggedTensor.from_row_splits(pieces.flat_values, row_splits),
            tf.RaggedTensor.from_row_splits(flags.flat_values, row_splits),
        )

    def _tokenize_tf(self, inputs):
        inputs = tf.convert_to_tensor(inputs, tf.string)
        if self.add_prefix_space:
            inputs = tf.strings.join([" ", inputs])
        unbatched = inputs.shape.rank == 0
        if unbatched:
            inputs = tf.expand_dims(inputs, 0)
        if inputs.shape.rank != 1:
            raise ValueError(
                f"tokenize() takes a string or a batch of strings, not rank {inputs.shape.rank}"
            )
        # String ops have CPU kernels only (as in keras-hub's tokenizers).
        with tf.device("cpu"):
            pieces, is_added = self._pre_tokenize(inputs)
            ids = compat.byte_pair_ids(self, pieces.flat_values, is_added.flat_values)
            tokens = tf.RaggedTensor.from_row_splits(
                ids.flat_values, tf.gather(ids.row_splits, pieces.row_splits)
            )
        if self.sequence_length:
            tokens = tokens.to_tensor(shape=[None, self.sequence_length])
        if unbatched:
            tokens = tf.squeeze(tokens, 0)
        return tokens

    def get_config(self):
        return {**super().get_config(), **self.settings()}


def unsaved_kwargs(tokenizer):
    """Constructor arguments a keras-hub tokenizer leaves out of its config.

    keras-hub 0.32's Llama3Tokenizer takes its start/end tokens as arguments
    but does not record them: a converted checkpoint with other ones
    (SmolLM2: <|im_start|>, <|im_end|>) would not rebuild or reload.
    """
    if not isinstance(tokenizer, keras_hub.models.Llama3Tokenizer):
        return {}
    ends = {tokenizer.start_token, tokenizer.end_token}
    return {
        "bos_token": tokenizer.start_token,
        "eos_token": tokenizer.end_token,
        "misc_special_tokens": sorted(set(tokenizer.special_tokens) - ends),
    }


def plain_config(tokenizer):
    """A keras-hub BPE tokenizer's config with everything its constructor needs."""
    config = {
        k: v
        for k, v in tokenizer.get_config().items()
        if k not in ("pattern", "split_digits", "added_tokens")
    }
    config.update(vocabulary=dict(tokenizer.vocabulary), merges=list(tokenizer.merges))
    config.update(unsaved_kwargs(tokenizer))
    if "misc_special_tokens" in config:
        config["misc_special_tokens"] = set(config["misc_special_tokens"])
    return config


#: the split of checkpoints that do not say theirs (keras-hub presets).
_CLASS_DEFAULTS = {
    keras_hub.models.GPT2Tokenizer: {"pattern": "gpt2", "split_digits": False},
    keras_hub.models.Llama3Tokenizer: {"pattern": "llama3", "split_digits": False},
}


def exact(tokenizer, tokenizer_json=None, saved=None):
    """`tokenizer`, splitting as its checkpoint's own where tftransfer knows how.

    Args:
        tokenizer: a keras-hub tokenizer; other than `GPT2Tokenizer` and
            `Llama3Tokenizer` it is returned as it is.
        tokenizer_json: a Hugging Face folder's `tokenizer.json` (a dict):
            its pre-tokenizer and added tokens decide.
        saved: the `settings()` a tftransfer preset recorded.

    Returns:
        An `HfGPT2Tokenizer` / `HfLlama3Tokenizer`, or `tokenizer` (with a
        warning when its `tokenizer.json` splits in a way not reproduced).
    """
    plain = next((c for c in _CLASS_DEFAULTS if isinstance(tokenizer, c)), None)
    if plain is None:
        return tokenizer
    if tokenizer_json:
        split = pre_tokenizers.settings(tokenizer_json.get("pre_tokenizer"))
        if split is None:
            logging.warning(
                f"the checkpoint's pre-tokenizer {tokenizer_json.get('pre_tokenizer')} "
                "is not one tftransfer reproduces; keras-hub's approximation is used, whose "
                "token ids can differ from the checkpoint's around whitespace."
            )
            return tokenizer
        added = [t["content"] for t in tokenizer_json.get("added_tokens", [])]
        return HfBytePairTokenizer.like(tokenizer, added_tokens=added or None, **split)
    return HfBytePairTokenizer.like(tokenizer, **(saved or _CLASS_DEFAULTS[plain]))


@keras.saving.register_keras_serializable(package="tftransfer")
class HfGPT2Tokenizer(HfBytePairTokenizer, keras_hub.models.GPT2Tokenizer):
    """keras-hub's `GPT2Tokenizer`, splitting as the checkpoint's `tokenizer.json`."""


@keras.saving.register_keras_serializable(package="tftransfer")
class HfLlama3Tokenizer(HfBytePairTokenizer, keras_hub.models.Llama3Tokenizer):
    """keras-hub's `Llama3Tokenizer`, splitting as the checkpoint's `tokenizer.json`."""
