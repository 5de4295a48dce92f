"""Graph-input binding shared by the exact reference and the HW-graph executor."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.exact import ExactError, evaluate
from finn_transforms.model_io import bind_graph_inputs


def _add_model(inputs: tuple[str, ...]) -> ModelWrapper:
    vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in inputs]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    const = numpy_helper.from_array(np.ones((1, 2), np.float32), "c")
    # an initializer listed as a graph input (older exporters do this) is not an input to bind
    graph = helper.make_graph([helper.make_node("Add", [inputs[0], inputs[-1]], ["s"]), helper.make_node("Add", ["s", "c"], ["y"])],
                              "g", vis + [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 2])], [out], [const])
    return ModelWrapper(helper.make_model(graph))


def test_bare_value_binds_to_the_single_input():
    x = np.zeros((1, 2), np.float32)
    assert list(bind_graph_inputs(_add_model(("a",)), x)) == ["a"]
    assert bind_graph_inputs(_add_model(("a",)), x)["a"] is x


@pytest.mark.parametrize("given", [{"a": 0}, {"a": 0, "b": 0, "z": 0}, {"z": 0, "b": 0}])
def test_missing_or_unknown_names_are_refused_with_the_graph_inputs(given):
    with pytest.raises(ValueError, match=r"graph inputs are \['a', 'b'\]"):
        bind_graph_inputs(_add_model(("a", "b")), given)


def test_exact_reference_raises_its_own_error_and_evaluates():
    model = _add_model(("a", "b"))
    with pytest.raises(ExactError, match="pass a dict"):
        evaluate(model, np.zeros((1, 2), np.float32))
    out = evaluate(model, {"a": np.array([[0.5, 1.0]], np.float32), "b": np.array([[0.25, -3.0]], np.float32)})
    assert [float(v) for v in out["y"].fractions().ravel()] == [1.75, -1.0]
