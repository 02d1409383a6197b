"""The x2-upsample + 3x3-conv fusion: the same outputs, and only where it is exact."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipelines.upsample_conv import find_pairs, interpolation_matrix, phases, upsample_conv_model
from pipelines.winograd import conv_layers

C, K, N = 6, 5, 8


def pair_model(
    mode: str = "linear", transform: str = "half_pixel", bias: bool = True, pads: int = 1, extra_reader: bool = False
) -> onnx.ModelProto:
    """Relu -> Resize x2 -> Conv 3x3 -> LeakyRelu, with a last initializer that must stay last."""
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((K, C, 3, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(weight, "w"),
    ]
    conv_inputs = ["u", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(K).astype(np.float32), "b"))
        conv_inputs.append("b")
    inits.append(numpy_helper.from_array(np.eye(3, dtype=np.float32), "emap"))
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Resize", ["r", "", "scales"], ["u"], mode=mode, coordinate_transformation_mode=transform),
        helper.make_node("Conv", conv_inputs, ["y"], kernel_shape=[3, 3], pads=[pads] * 4),
        helper.make_node("LeakyRelu", ["y"], ["z"], alpha=0.2),
    ]
    out = 2 * N + 2 * pads - 2
    outputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, K, out, out])]
    if extra_reader:
        outputs.append(helper.make_tensor_value_info("u", TensorProto.FLOAT, [1, C, 2 * N, 2 * N]))
    graph = helper.make_graph(
        nodes, "pair", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, N, N])], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def shapes_of(model: onnx.ModelProto) -> dict[str, list[int]]:
    return {layer.node.input[0]: [1, layer.channels[1], layer.height, layer.width] for layer in conv_layers(model)}


@pytest.mark.parametrize(
    ("mode", "transform"),
    [("linear", "half_pixel"), ("linear", "pytorch_half_pixel"), ("linear", "asymmetric"), ("nearest", "asymmetric")],
)
@pytest.mark.parametrize("bias", [True, False])
def test_fused_layer_gives_the_same_outputs_border_included(mode: str, transform: str, bias: bool) -> None:
    model = pair_model(mode, transform, bias)
    x = np.random.default_rng(4).standard_normal((1, C, N, N)).astype(np.float32) * 3
    expected = run(model, x)
    fused, count = upsample_conv_model(pair_model(mode, transform, bias), shapes_of(model))
    assert count == 1
    types = [node.op_type for node in fused.graph.node]
    assert "Resize" not in types and "DepthToSpace" in types
    convs = [node for node in fused.graph.node if node.op_type == "Conv"]
    widest = max(convs, key=lambda node: next(i.dims[0] for i in fused.graph.initializer if i.name == node.input[1]))
    assert next(i.dims[0] for i in fused.graph.initializer if i.name == widest.input[1]) == 4 * K
    got = run(fused, x)
    assert got.shape == expected.shape
    # Exact up to float rounding everywhere, the outermost rows and columns (the corrected ring) included.
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-4 * float(np.abs(expected).max()))
    ring = np.ones(expected.shape[2:], bool)
    ring[1:-1, 1:-1] = False
    assert np.abs(got[..., ring] - expected[..., ring]).max() <= 2e-4 * float(np.abs(expected).max())
    assert fused.graph.initializer[-1].name == "emap"
    assert {"w", "b"}.isdisjoint(init.name for init in fused.graph.initializer)


def test_align_corners_has_no_period_two_structure_and_is_left_alone() -> None:
    model = pair_model("linear", "align_corners")
    resize = next(node for node in model.graph.node if node.op_type == "Resize")
    assert phases(interpolation_matrix(resize, N, 17)) is None
    fused, count = upsample_conv_model(model, shapes_of(model))
    assert count == 0
    assert [node.op_type for node in fused.graph.node] == ["Relu", "Resize", "Conv", "LeakyRelu"]


def test_only_a_resize_read_by_one_zero_padded_3x3_conv_is_fused() -> None:
    assert len(find_pairs(pair_model(), shapes_of(pair_model()))) == 1
    assert find_pairs(pair_model(pads=0), shapes_of(pair_model(pads=0))) == []
    shared = pair_model(extra_reader=True)
    assert find_pairs(shared, shapes_of(shared)) == []


def test_a_rewrite_that_does_not_match_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.upsample_conv as upsample_conv

    real = upsample_conv.fused_nodes

    def off_by_a_bit(*args: object, **kwargs: object) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
        nodes, inits = real(*args, **kwargs)  # type: ignore[arg-type]
        for index, init in enumerate(inits):
            if init.name.endswith("_up_w"):
                inits[index] = numpy_helper.from_array(numpy_helper.to_array(init) * 1.01, init.name)
        return nodes, inits

    monkeypatch.setattr(upsample_conv, "fused_nodes", off_by_a_bit)
    model = pair_model()
    fused, count = upsample_conv_model(model, shapes_of(model))
    assert count == 0
    assert "Resize" in [node.op_type for node in fused.graph.node]


def test_a_resize_onnxruntime_cannot_measure_leaves_its_pair_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Measuring the interpolation runs the Resize on its own; if onnxruntime refuses, that pair is skipped (the
    model stays valid and the Winograd forms go on without it) instead of the error ending the rewrite."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    import pipelines.upsample_conv as upsample_conv

    def refuse(*args: object, **kwargs: object) -> None:
        raise Fail("Resize: this attribute needs the roi input")

    monkeypatch.setattr(upsample_conv, "interpolation_matrix", refuse)
    model = pair_model()
    x = np.random.default_rng(4).standard_normal((1, C, N, N)).astype(np.float32)
    expected = run(model, x)
    fused, count = upsample_conv_model(model, shapes_of(model))
    assert count == 0
    assert [node.op_type for node in fused.graph.node] == ["Relu", "Resize", "Conv", "LeakyRelu"]
    np.testing.assert_array_equal(run(fused, x), expected)
