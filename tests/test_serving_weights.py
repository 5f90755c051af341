"""Weights prepared once for an export's graphs, and only for them."""

import gc

import numpy as np
import pytest
import tensorflow as tf

from tftransfer.models.serving_weights import (
    ServingFunction,
    ServingWeights,
    captured_variables,
    prepared,
)


def _doubled(variable, calls):
    def build():
        calls.append(1)
        return variable * 2.0

    return lambda x: x * prepared(("doubled", id(variable)), build)


def test_outside_a_scope_the_graph_computes_from_the_variables_each_call():
    variable, calls = tf.Variable([1.0, 2.0]), []
    serve = tf.function(_doubled(variable, calls))
    np.testing.assert_allclose(serve(tf.ones([2])), [2.0, 4.0])
    variable.assign([5.0, 6.0])  # training goes on: the graph follows
    np.testing.assert_allclose(serve(tf.ones([2])), [10.0, 12.0])


def test_inside_a_scope_signatures_share_one_copy_of_the_weights_as_they_were():
    variable, calls = tf.Variable([1.0, 2.0]), []
    weights = ServingWeights()
    with weights.scope():
        first = tf.function(_doubled(variable, calls)).get_concrete_function(tf.ones([2]))
        second = tf.function(_doubled(variable, calls)).get_concrete_function(tf.ones([3, 2]))
    assert len(calls) == 1 and len(weights.variables) == 1
    assert {v.ref() for v in captured_variables([first])} == {weights.variables[0].ref()}
    variable.assign([5.0, 6.0])
    np.testing.assert_allclose(second(tf.ones([3, 2]))[0], [2.0, 4.0])
    # A graph traced after the scope reads the model's weights as they are now.
    np.testing.assert_allclose(tf.function(_doubled(variable, []))(tf.ones([2])), [10.0, 12.0])


def test_scopes_do_not_nest():
    with ServingWeights().scope():
        with pytest.raises(RuntimeError, match="do not nest"):
            with ServingWeights().scope():
                pass
    with ServingWeights().scope():  # the failed one left nothing behind
        pass


def test_an_in_process_serving_function_prepares_once_and_keeps_its_weights():
    variable, calls = tf.Variable([1.0, 2.0]), []
    serve = ServingFunction(_doubled(variable, calls), [tf.TensorSpec([2], tf.float32)])
    np.testing.assert_allclose(serve(tf.ones([2])), [2.0, 4.0])
    gc.collect()  # the traced graph holds its prepared variable weakly
    np.testing.assert_allclose(serve(tf.constant([3.0, 1.0])), [6.0, 4.0])
    assert len(calls) == 1
