"""Task metrics: classification, entity F1 (seqeval), official SQuAD EM/F1, multi-label F1."""
