"""Reading raw examples and turning them into batched tf.data pipelines."""
