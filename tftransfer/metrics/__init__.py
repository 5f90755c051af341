"""Task metrics: classification reports (and later seqeval, SQuAD)."""
