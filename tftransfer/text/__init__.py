"""In-graph text operations (TF and tf-text ops, so they run in tf.data and in exports)."""
