"""Runs code in a fresh interpreter, as TF Serving or a user's shell would.

Every child gets a timeout, so that a hung process fails its test instead of
holding CI until its 90-minute limit.
"""

import json
import subprocess
import sys

#: bound on one child process's life (importing TF alone takes ~5 s).
TIMEOUT = 300

# Runs in a fresh interpreter that imports only tensorflow and tensorflow_text,
# as TF Serving's process would: nothing of tftransfer or keras may be needed.
SERVE = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
before = set(sys.modules)
path, names, rows = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
serve = tf.saved_model.load(path).signatures["serving_default"]
inputs = {n: tf.constant([r[n] for r in rows]) for n in names}
def text(x):
    if isinstance(x, list):
        return [text(y) for y in x]
    return x.decode() if isinstance(x, bytes) else x
out = {k: text(v.numpy().tolist()) for k, v in serve(**inputs).items()}
loaded = sorted(m for m in set(sys.modules) - before
                if m.split(".")[0] in ("keras", "keras_hub", "tftransfer"))
print(json.dumps({"outputs": out, "modules": loaded}))
"""

# The NER export's two signatures (entities from text, tags for tokens), the same way.
TAG = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
before = set(sys.modules)
path, texts, tokens = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
model = tf.saved_model.load(path)
ents = model.signatures["serving_default"](text=tf.constant(texts))
width = max(len(t) for t in tokens)
padded = tf.constant([t + [""] * (width - len(t)) for t in tokens])
tags = model.signatures["tag_tokens"](tokens=padded)
def plain(d):
    return {k: [[x.decode() if isinstance(x, bytes) else x for x in row]
                if isinstance(row, list) else row for row in v.numpy().tolist()]
            for k, v in d.items()}
loaded = sorted(m for m in set(sys.modules) - before
                if m.split(".")[0] in ("keras", "keras_hub", "tftransfer"))
print(json.dumps({"entities": plain(ents), "tags": plain(tags), "modules": loaded}))
"""


def dead_pid():
    """The pid of a process that has just ended (what a killed owner leaves behind)."""
    return int(run([sys.executable, "-c", "import os; print(os.getpid())"], check=True).stdout)


def run(args, **kwargs):
    """`subprocess.run(args)` with captured text output and `TIMEOUT` (killed past it)."""
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run(args, **kwargs)


def python(script, *args, **kwargs):
    """Runs `script` with `args` in a fresh interpreter; returns its last stdout line as JSON."""
    result = run([sys.executable, "-c", script, *args], check=True, **kwargs)
    return json.loads(result.stdout.strip().splitlines()[-1])


def serve(path, names, rows):
    """`serving_default` of the SavedModel at `path` on `rows` (dicts with `names`)."""
    return python(SERVE, path, json.dumps(names), json.dumps(rows))


def tag(path, texts, tokens):
    """An NER export's entities for `texts` and tags for pre-split `tokens`."""
    return python(TAG, path, json.dumps(texts), json.dumps(tokens))
