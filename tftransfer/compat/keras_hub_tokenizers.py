"""keras-hub's private tokenizer internals: WordPiece's split patterns, byte-level BPE's merges.

Read from keras-hub 0.32; `check_tokenizers` probes both.
"""

from tftransfer.compat.base import incompatible, require


# keras-hub 0.32: words split with keras-hub's own patterns are never cut
# again by the tokenizer's pre-splitting; keras-hub does not export them.
def wordpiece_split_patterns(split_on_cjk):
    """`(delimiters, kept delimiters)` regexes of keras-hub's WordPiece pre-splitting."""
    from keras_hub.src.tokenizers import word_piece_tokenizer as wordpiece

    if split_on_cjk:
        names = ("WHITESPACE_PUNCTUATION_AND_CJK_REGEX", "PUNCTUATION_AND_CJK_REGEX")
    else:
        names = ("WHITESPACE_AND_PUNCTUATION_REGEX", "PUNCTUATION_REGEX")
    return tuple(
        require(wordpiece, name, "keras-hub", owner="word_piece_tokenizer") for name in names
    )


# keras-hub 0.32: `BytePairTokenizer` merges (and caches) only inside its
# own `_tokenize_tf`, after its own split of the text, which cannot be
# replaced; `HfBytePairTokenizer` splits as the checkpoint's tokenizer does.
def byte_pair_ids(tokenizer, words, whole):
    """keras-hub byte-level BPE on words already split: `[words]` -> `[words, (ids)]`.

    Args:
        tokenizer: a keras-hub `BytePairTokenizer`.
        words: a 1-D string tensor of pre-tokens (not empty).
        whole: a bool tensor like `words`: vocabulary tokens as they are
            (added tokens), looked up without merging.

    Returns:
        A ragged int32 `[words, (ids)]` (token strings if the tokenizer's
        dtype is a string); unknown tokens are -1, as in keras-hub.
    """
    import tensorflow as tf

    require(tokenizer, "_maybe_initialized_tf", "keras-hub")()
    cache = require(tokenizer, "cache", "keras-hub")
    merge = require(tokenizer, "_bpe_merge_and_update_cache_tf", "keras-hub")
    found = cache.lookup(words)
    unseen = (found == "") & ~whole

    def merged():
        merge(tf.boolean_mask(words, unseen))
        return cache.lookup(words)

    joined = tf.cond(tf.reduce_any(unseen), merged, lambda: found)
    tokens = tf.strings.split(tf.where(whole, words, joined), sep=" ")
    if tokenizer.compute_dtype == "string":
        return tokens
    ids = require(tokenizer, "token_to_id_map", "keras-hub").lookup(tokens)
    return tf.cast(ids, tokenizer.compute_dtype)


def check_tokenizers():
    """Both split patterns exist; a tiny BPE merges `ab` and keeps the added token `b`."""
    import keras_hub
    import tensorflow as tf

    wordpiece_split_patterns(True)
    wordpiece_split_patterns(False)
    bpe = keras_hub.tokenizers.BytePairTokenizer(
        vocabulary={"a": 0, "b": 1, "ab": 2}, merges=["a b"], _allow_python_workflow=False
    )
    ids = byte_pair_ids(bpe, tf.constant(["ab", "b"]), tf.constant([False, True]))
    if ids.to_list() != [[2], [1]]:
        raise incompatible(
            "keras-hub", "`BytePairTokenizer`'s merge", f"made {ids.to_list()} of `ab`, `b`"
        )
