"""Word shape classes (lower, Capitalised, ALL CAPS, ...), in-graph.

Uncased checkpoints (all-MiniLM-L6-v2, `bert_*_uncased`) lowercase their
input, which throws away the strongest single cue for named entities. NER
systems have long fed a small "casing" embedding next to the word vectors
(Lample et al., 2016; Chiu and Nichols, 2016); the token-classification head
does the same with these classes, computed from the original word so that
training and the exported graph agree.

Example:

>>> import tensorflow as tf
>>> from tftransfer.data import word_casing
>>> word_casing.classify(tf.constant(["EU", "rejects", "German", "iPhone", "1996", "."])).numpy()
array([3, 1, 2, 4, 5, 6], dtype=int32)
"""

import tensorflow as tf

#: class ids; 0 is kept for special tokens and padding.
PAD, LOWER, CAPITALISED, UPPER, MIXED, NUMBER, OTHER = range(7)
NUM_CLASSES = 7


def classify(words):
    """Returns the int32 casing class of each word in a string tensor."""
    has_letter = tf.strings.regex_full_match(words, r".*\pL.*")
    has_digit = tf.strings.regex_full_match(words, r".*\pN.*")
    no_upper = tf.strings.regex_full_match(words, r"[^\p{Lu}]*")
    capitalised = tf.strings.regex_full_match(words, r"[^\pL]*\p{Lu}[^\p{Lu}]*")
    # At least two letters and none lowercase ("EU", "U.S."); a lone capital
    # ("I", "A") counts as capitalised.
    upper = tf.strings.regex_full_match(words, r"[^\p{Ll}]*\p{Lu}[^\p{Ll}]*\p{Lu}[^\p{Ll}]*")
    classes = tf.where(has_digit, NUMBER, OTHER)
    classes = tf.where(has_letter, MIXED, classes)
    classes = tf.where(has_letter & upper, UPPER, classes)
    classes = tf.where(has_letter & capitalised, CAPITALISED, classes)
    classes = tf.where(has_letter & no_upper, LOWER, classes)
    return tf.cast(classes, tf.int32)
