"""Predictions for raw inputs, from a run's checkpoint or an exported SavedModel.

Both paths call the same serving functions (the task's `serving_functions`,
in-process for a checkpoint, from the SavedModel otherwise), batch the
records, and let the task turn each example's outputs into a JSON-ready
record: the input fields plus the answer (labels and probabilities, or
entities with character offsets).

A record is routed to the first signature whose inputs it has (e.g. `text`
-> `serving_default`; for NER, `tokens` -> `tag_tokens`).

Example:

>>> import contextlib, io, tempfile
>>> from tftransfer import configs, experiment, predict
>>> params = configs.load(
...     ["configs/demo_goemotions_sentiment.yaml"],
...     {"data": {"train": {"max_examples": 64}, "validation": {"path": ""}},
...      "task": {"text_classification": {"max_seq_length": 16}},
...      "backbone": {"keep_layers": 1},  # MiniLM's first block of 6: a quick run
...      "trainer": {"train_steps": 2, "batch_size": 16}},
... )
>>> run_dir = tempfile.mkdtemp()
>>> with contextlib.redirect_stdout(io.StringIO()):  # the progress bar
...     _ = experiment.train(params, run_dir)
>>> [result] = predict.with_checkpoint(run_dir, [{"text": "what a lovely day"}])
>>> sorted(result)
['label_ids', 'labels', 'probabilities', 'text']
"""

import tensorflow as tf

from tftransfer import export, loaded_run, tasks
from tftransfer.data import tagged_readers
from tftransfer.data.readers import DataError
from tftransfer.models.serving_weights import ServingFunction


def _route(records, signatures, first=1):
    """Groups record indices by the signature that can answer them.

    `first` is the 1-based input number of `records[0]`, for messages.
    """
    groups = {}
    takes_pairs = any("text_pair" in specs for specs in signatures.values())
    for i, record in enumerate(records):
        number = first + i
        if "text_pair" in record and not takes_pairs:
            # Answering on `text` alone would look right and be wrong.
            raise DataError(
                f"input {number}: has `text_pair`, but this model reads single texts "
                f"(inputs: {' or '.join('+'.join(s) for s in signatures.values())})"
            )
        for name, specs in signatures.items():
            if all(k in record for k in specs):
                for key, spec in specs.items():
                    problem = _problem(record[key], spec)
                    if problem:
                        raise DataError(f"input {number}: field `{key}` {problem}")
                groups.setdefault(name, []).append(i)
                break
        else:
            wanted = " or ".join("+".join(f"`{k}`" for k in s) for s in signatures.values())
            raise DataError(f"input {number}: needs the field(s) {wanted}")
    return groups


def spec_rank(spec):
    return len(spec.shape)


def _problem(value, spec):
    """What is wrong with one input field, or None."""
    if spec_rank(spec) == 1:
        # An empty text is answered like any text, as by the export.
        return None if isinstance(value, str) else "must be text"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "must be a list of strings"
    return tagged_readers.empty_token_problem(value)


def request_tensors(chunk, specs):
    """The tensors a serving signature takes for `chunk`, a list of input dicts.

    Token-list inputs (rank-2 specs) are padded with empty strings to the
    chunk's longest list, as the export expects.
    """
    inputs = {}
    for name, spec in specs.items():
        values = [r[name] for r in chunk]
        if spec_rank(spec) == 2:
            width = max((len(v) for v in values), default=0)
            values = [v + [""] * (width - len(v)) for v in values]
            inputs[name] = tf.constant(values, tf.string, shape=[len(values), width])
        else:
            inputs[name] = tf.constant(values, tf.string)
    return inputs


def _chunks(records, size):
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stream(task_cls, functions, specs, records, batch_size):
    """Results in input order, one batch of `records` (any iterable) at a time.

    Reading, predicting and yielding batch by batch keeps memory flat on
    any number of inputs and shows the first results before the last input
    is read (`predict` on a pipe).
    """
    first = 1
    for chunk in _chunks(records, batch_size):
        results = [None] * len(chunk)
        for name, indices in _route(chunk, specs, first).items():
            outputs = functions[name](**request_tensors([chunk[i] for i in indices], specs[name]))
            outputs = {k: v.numpy() for k, v in outputs.items()}
            for j, i in enumerate(indices):
                one = {k: v[j] for k, v in outputs.items()}
                results[i] = task_cls.format_result(chunk[i], one)
        first += len(chunk)
        yield from results


def _run(task_cls, functions, specs, records, batch_size, stream):
    results = _stream(task_cls, functions, specs, records, batch_size)
    return results if stream else list(results)


def checkpoint_functions(model_dir, checkpoint="best"):
    """`(task class, {signature: fn(**inputs)}, {signature: input specs})` of a run's checkpoint.

    The task's serving functions built in-process on the restored model.
    """
    loaded = loaded_run.LoadedRun(model_dir, checkpoint)
    functions, specs = {}, {}
    for name, (fn, input_specs) in loaded.serving_functions().items():
        names = list(input_specs)
        traced = ServingFunction(fn, list(input_specs.values()))
        functions[name] = lambda _t=traced, _n=names, **kw: _t(*[kw[k] for k in _n])
        specs[name] = input_specs
    return type(loaded.task), functions, specs


def saved_model_functions(version_dir):
    """`(task class, {signature: fn(**inputs)}, {signature: input specs})` of an export."""
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    loaded = tf.saved_model.load(version_dir)
    task_cls = tasks.get(export.read_metadata(version_dir)["task"])
    functions = dict(loaded.signatures)
    # serving_default first, so plain text goes there.
    order = sorted(functions, key=lambda n: n != "serving_default")
    specs = {n: functions[n].structured_input_signature[1] for n in order}
    # A signature holds its variables weakly: the loaded object lives with them.
    functions = {n: lambda _f=functions[n], _owner=loaded, **kw: _f(**kw) for n in order}
    return task_cls, functions, specs


def with_checkpoint(model_dir, records, checkpoint="best", batch_size=64, stream=False):
    """Predicts with the serving functions built in-process on a checkpoint.

    Returns a list of results, or with `stream` an iterator that reads
    `records` (any iterable) one batch at a time.
    """
    return _run(*checkpoint_functions(model_dir, checkpoint), records, batch_size, stream)


def with_saved_model(version_dir, records, batch_size=64, stream=False):
    """Predicts by calling an exported SavedModel's signatures (see `with_checkpoint`)."""
    return _run(*saved_model_functions(version_dir), records, batch_size, stream)
