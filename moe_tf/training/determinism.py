"""`training.deterministic`: TensorFlow op determinism, and which of the training step's ops it cannot make
deterministic on this machine's devices.

TensorFlow makes every op deterministic or refuses to run it: a GPU kernel with no deterministic implementation
raises `UnimplementedError` at its first run. `GPU_WITHOUT_DETERMINISTIC_KERNEL` lists the op types whose GPU
kernels do that (TensorFlow's kernels check `OpDeterminismRequired()`; its determinism RFC and release notes name
them); the run says before its first step which of them its training step uses. Every CPU kernel is deterministic.
"""

from __future__ import annotations

import tensorflow as tf

# op type → the Python API it comes from
GPU_WITHOUT_DETERMINISTIC_KERNEL = {
    "AdjustContrastv2": "tf.image.adjust_contrast",
    "Bincount": "tf.math.bincount",
    "DenseBincount": "tf.math.bincount",
    "CropAndResizeGradBoxes": "tf.image.crop_and_resize gradient",
    "CropAndResizeGradImage": "tf.image.crop_and_resize gradient",
    "DepthwiseConv2dNativeBackpropFilter": "tf.nn.depthwise_conv2d gradient",
    "DepthwiseConv2dNativeBackpropInput": "tf.nn.depthwise_conv2d gradient",
    "FusedBatchNormGrad": "batch normalization gradient with training off",
    "FusedBatchNormGradV2": "batch normalization gradient with training off",
    "FusedBatchNormGradV3": "batch normalization gradient with training off",
    "ResizeNearestNeighborGrad": "tf.image.resize (nearest) gradient",
    "SoftmaxCrossEntropyWithLogits": "the raw softmax cross-entropy kernel",
    "SparseTensorDenseMatMul": "tf.sparse.sparse_dense_matmul",
}
# op types TensorFlow runs on the CPU instead when determinism is on (correct, slower)
GPU_RUN_ON_CPU = (
    "ScatterNd",
    "TensorScatterAdd",
    "TensorScatterSub",
    "TensorScatterUpdate",
    "ResourceScatterNdAdd",
    "ResourceScatterNdUpdate",
    "ScatterNdNonAliasingAdd",
)


def enable() -> None:
    tf.config.experimental.enable_op_determinism()


def graph_op_types(concrete_function) -> set[str]:
    """Every op type of a traced function, including the functions it calls (loop bodies, branches)."""
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


def describe(op_types: set[str], gpus: int) -> str:
    """What op determinism means for a training step with these op types on this machine (printed at start)."""
    if not gpus:
        return (
            f"deterministic: TensorFlow op determinism on; CPU only, where all {len(op_types)} op types of the "
            "training step have deterministic kernels; the input pipeline keeps its order"
        )
    missing = sorted(
        f"{op} ({GPU_WITHOUT_DETERMINISTIC_KERNEL[op]})" for op in op_types if op in GPU_WITHOUT_DETERMINISTIC_KERNEL
    )
    on_cpu = sorted(op for op in op_types if op in GPU_RUN_ON_CPU)
    text = (
        f"deterministic: TensorFlow op determinism on ({gpus} GPU(s)); of the training step's {len(op_types)} "
        "op types, "
    )
    if missing:
        text += (
            f"these have no deterministic GPU kernel and will stop the first step: {', '.join(missing)} "
            "(set training.deterministic: false, or change the model part that uses them)"
        )
    else:
        text += "none is known to lack a deterministic GPU kernel"
    if on_cpu:
        text += f"; {', '.join(on_cpu)} run on the CPU (slower)"
    return text
