"""A keras-hub tokenizer seen as graph ops on lists of words, with its special ids.

Token classification and question answering tokenize words one by one (to
keep word boundaries and offsets) and build their own sequences around them,
so both need the same few things from the backbone's tokenizer.

Example:

```python
import tensorflow as tf
from tftransfer import backbones
from tftransfer.tasks.word_tokenizer import WordTokenizer

_, tokenizer = backbones.load("default")
words = WordTokenizer(tokenizer)
words.pieces(tf.constant(["hello", "", "zurich"])).to_list()  # [[7592], [100], [10204]]
```
"""

import tensorflow as tf

from tftransfer.data import word_windows


def token_id(tokenizer, *names):
    """The first of the tokenizer's `names` attributes that is set."""
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return value
    raise ValueError(f"tokenizer {type(tokenizer).__name__} has none of {names}")


class WordTokenizer:
    """Subword ids of words, in-graph, and the ids that frame a sequence.

    Args:
        tokenizer: a keras-hub tokenizer.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pad_id = token_id(tokenizer, "pad_token_id")
        self.start_id = token_id(tokenizer, "cls_token_id", "start_token_id")
        self.end_id = token_id(tokenizer, "sep_token_id", "end_token_id")
        oov = getattr(tokenizer, "oov_token", None)
        self.unk_id = tokenizer.token_to_id(oov) if oov else self.pad_id
        self.split_on_cjk = getattr(tokenizer, "split_on_cjk", True)
        self.lowercase = bool(getattr(tokenizer, "lowercase", False))
        # keras-hub tokenizers return Python lists when called eagerly; in a
        # graph they return ragged tensors, which the windowing needs.
        self._tokenize = tf.function(
            lambda texts: tokenizer(texts),
            input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False,
        )

    def ids(self, texts):
        """[n] strings -> ragged [n, (subwords)] int32 ids."""
        ids = self._tokenize(texts)
        if not isinstance(ids, tf.RaggedTensor):  # a tokenizer with a fixed length
            ids = tf.RaggedTensor.from_tensor(ids, padding=self.pad_id)
        return tf.cast(ids, tf.int32)

    def pieces(self, words):
        """Like `ids`, but a word with no subword gets the unknown token."""
        return word_windows.fill_empty(self.ids(words), self.unk_id)
