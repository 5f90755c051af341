"""keras-hub's BERT tokenizer with the text normalisation BERT checkpoints were trained with.

Google's BERT tokenizer (and Hugging Face's `BertTokenizer`, a copy of it)
cleans and lowercases text differently from keras-hub's `BertTokenizer`:

- it deletes control and format characters (NUL, zero-width space U+200B,
  soft hyphen U+00AD, ...), where keras-hub splits words at them;
- it treats every space separator (e.g. the ideographic space U+3000) as a
  space;
- it lowercases with `str.lower`, where keras-hub case-folds with NFKC
  (`tf_text.case_fold_utf8`), which also rewrites `ß` -> `ss`, ligatures
  (`ﬁ` -> `fi`), full-width letters and digits, `²` -> `2`, `½` -> `1⁄2`,
  `™` -> `tm` and Roman numeral characters.

An uncased checkpoint's vocabulary and weights saw the first behaviour, so
this subclass normalises text that way, in the graph (plain TF ops, so the
export still runs on TF Serving), and then lets keras-hub split and look up
word pieces without its case folding. The accents are stripped by keras-hub
as before (NFD, then marks removed), which is what BERT does too. keras-hub
has no switch for this (its `lowercase` always case-folds), hence a subclass.

Special tokens written in the text (`[MASK]`, `[SEP]`, `[CLS]`, `[PAD]`,
`[UNK]`, exactly so cased) are read as those tokens, as Hugging Face's
tokenizers read them: "a [MASK] day" is `a`, the mask token, `day`, not
`[`, `mask`, `]`. Lowercasing leaves them as they are.

Example:

>>> tokenizer = HfBertTokenizer(
...     vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "zero", "##width", "width"],
...     lowercase=True,
... )
>>> [int(i) for i in tokenizer("Zero\\u200bwidth")]
[5, 6]
>>> [int(i) for i in tokenizer("zero[MASK] Width")]
[5, 4, 7]
"""

import re

import keras
import keras_hub
import tensorflow as tf
import tensorflow_text as tf_text

# Google BERT's `_is_control`: every "C*" category except tab, newline and
# carriage return (RE2 has no class subtraction, hence the ranges; it has no
# \p{Cn} either, so unassigned code points pass through as in keras-hub).
_DELETED = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]|\p{Cf}|\p{Co}|\p{Cs}|\x{FFFD}"
# Google BERT's `_is_whitespace`: tab, newline, carriage return and category Zs.
_SPACES = r"[\t\n\r\p{Zs}]"


def normalize(texts, lowercase, keep=None):
    """BERT's text cleaning (and `str.lower` if `lowercase`), as TF string ops.

    Args:
        texts: a string tensor.
        lowercase: whether to lowercase.
        keep: a regex of (special) tokens not lowercased, or None.
    """
    texts = tf.strings.regex_replace(texts, _DELETED, "")
    texts = tf.strings.regex_replace(texts, _SPACES, " ")
    if not lowercase:
        return texts
    if keep is None:
        return tf.strings.lower(texts, encoding="utf-8")
    if texts.shape.rank == 0:
        return normalize(texts[tf.newaxis], lowercase, keep)[0]
    # After the deletions: TF Text's split stops at a NUL character.
    pieces = tf_text.regex_split(texts, keep, keep_delim_regex_pattern=keep)
    special = tf.ragged.map_flat_values(tf.strings.regex_full_match, pieces, keep)
    lower = tf.ragged.map_flat_values(tf.strings.lower, pieces, encoding="utf-8")
    return tf.strings.reduce_join(tf.ragged.map_flat_values(tf.where, special, pieces, lower), -1)


def _rebuilt(cls, tokenizer, **options):
    """A `cls` tokenizer with `tokenizer`'s vocabulary and options (its config), `options` set."""
    config = tokenizer.get_config()
    config["vocabulary"] = tokenizer.get_vocabulary()
    return cls.from_config({**config, **options})


@keras.saving.register_keras_serializable(package="tftransfer")
class HfBertTokenizer(keras_hub.models.BertTokenizer):
    """`keras_hub.models.BertTokenizer` that normalises text as BERT's own tokenizer.

    Args:
        lowercase: lowercase as `str.lower` does (keras-hub's flag of the
            same name case-folds with NFKC instead; it is off underneath).
        special_tokens_in_strings: read special tokens written in the text
            as those tokens (Hugging Face does; keras-hub's default is not to).
        **kwargs: as for `keras_hub.models.BertTokenizer`.
    """

    def __init__(self, vocabulary=None, lowercase=False, special_tokens_in_strings=True, **kwargs):
        if special_tokens_in_strings:
            # keras-hub splits out its own special tokens, not the unknown
            # token, which Hugging Face's tokenizers read too.
            extra = list(kwargs.pop("special_tokens", None) or [])
            kwargs["special_tokens"] = extra + ([] if "[UNK]" in extra else ["[UNK]"])
        super().__init__(
            vocabulary=vocabulary,
            lowercase=False,
            special_tokens_in_strings=special_tokens_in_strings,
            **kwargs,
        )
        self.bert_lowercase = bool(lowercase)
        # What keras-hub splits out of the text, left as it is by `normalize`.
        tokens = list(self.special_tokens) + list(kwargs.get("special_tokens") or [])
        self._keep = "|".join(re.escape(t) for t in tokens) if special_tokens_in_strings else None

    @classmethod
    def like(cls, tokenizer):
        """The same vocabulary and options as a keras-hub `BertTokenizer`.

        Special tokens in the text are read as tokens (`special_tokens_in_strings`),
        whatever `tokenizer` did: Hugging Face's tokenizer of every BERT
        checkpoint does.
        """
        return _rebuilt(cls, tokenizer, special_tokens_in_strings=True)

    def tokenize(self, inputs):
        if not isinstance(inputs, (tf.Tensor, tf.RaggedTensor)):
            inputs = tf.convert_to_tensor(inputs, tf.string)
        return super().tokenize(normalize(inputs, self.bert_lowercase, self._keep))

    def as_keras_hub(self):
        """A plain keras-hub tokenizer with these settings, for presets any keras-hub loads."""
        return _rebuilt(keras_hub.models.BertTokenizer, self)

    def get_config(self):
        config = super().get_config()
        config["lowercase"] = self.bert_lowercase
        return config
