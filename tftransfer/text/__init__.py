"""In-graph text operations (TF and tf-text ops, so they run in tf.data and in exports).

Tokenizers that match their checkpoints (`hf_bert_tokenizer`,
`hf_byte_pair_tokenizer` with `byte_level_split` and `pre_tokenizers`), word
tokenization into windows (`word_tokenizer`, `tag_windows`, `text_windows`),
and turning model outputs back into text (`entity_spans`, `iob2_decoder`,
`span_answers`, `utf8`). Nothing here knows a task.
"""
