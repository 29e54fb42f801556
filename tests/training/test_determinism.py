"""`training.deterministic`: the op types of the traced step (loop bodies included) and what the run says of them on
CPU and GPU machines. Bit-identical runs in fresh processes under op determinism: tests/training/test_signals.py."""

import tensorflow as tf

from moe_tf.training.determinism import describe, graph_op_types


def test_op_types_include_the_functions_a_step_calls():
    @tf.function
    def chunk(x, n):
        for _ in tf.range(n):
            x = tf.sparse.sparse_dense_matmul(tf.sparse.eye(2), x)
        return x

    types = graph_op_types(chunk.get_concrete_function(tf.ones([2, 2]), tf.constant(2)))
    assert types & {"While", "StatelessWhile"}
    assert "SparseTensorDenseMatMul" in types  # only in the loop body's function


def test_gpu_machines_hear_which_ops_will_stop_the_first_step():
    text = describe({"MatMul", "SparseTensorDenseMatMul", "TensorScatterUpdate", "Relu"}, gpus=2)
    assert (
        "(2 GPU(s)); of the training step's 4 op types, these have no deterministic GPU kernel and will stop the "
        "first step: SparseTensorDenseMatMul (tf.sparse.sparse_dense_matmul)" in text
    )
    assert "TensorScatterUpdate run on the CPU (slower)" in text
    assert "none is known" in describe({"MatMul", "Relu"}, gpus=1)


def test_cpu_machines_hear_that_every_kernel_is_deterministic():
    text = describe({"MatMul", "SparseTensorDenseMatMul"}, gpus=0)
    assert text.startswith("deterministic: TensorFlow op determinism on; CPU only, where all 2 op types")
    assert "stop" not in text
