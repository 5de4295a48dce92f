"""Design-space exploration on a tiny sweep: rows, FINN refusals as data, the JSON cache (resume),
the report files, the MAC cost model and its hook, and the same sweep on a process pool and on a
Dask cluster."""

from __future__ import annotations

import json
import math
from concurrent.futures import Executor, ThreadPoolExecutor

import onnx
import pytest
import torch

from brevitas_minifloat.dse import (
    InlineExecutor,
    Point,
    Space,
    Workload,
    analytic_mac_cost,
    load_model,
    model_mac_cost,
    pareto_front,
    preset,
    run_dse,
    train_float_model,
)
from brevitas_minifloat.hw.folded import folded_mac_lut, mean_lut_per_mac
from tests.helpers import finn_available

MLP = "brevitas_minifloat.dse.workload:digits_mlp"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> Workload:
    """An MLP trained for one epoch on the MNIST digits; 300 held-out images."""
    path = tmp_path_factory.mktemp("dse_model") / "mlp.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        meta = train_float_model(MLP, "mnist-5k", path, epochs=1)
    finally:
        torch.set_num_threads(threads)
    assert meta["accuracy"] > 0.8
    return Workload(model=MLP, weights=str(path), calibration_size=128, eval_size=300, name="test mlp")


class CountingExecutor(Executor):
    """Inline executor that records what it was asked to run."""

    def __init__(self):
        self.calls: list[str] = []
        self._inner = InlineExecutor()

    def submit(self, fn, /, *args, **kwargs):
        self.calls.append(fn.__name__)
        return self._inner.submit(fn, *args, **kwargs)


POINTS = [Point("INT4", "INT4"), Point("E2M1", "E2M1"), Point("E2M1", "E2M1", ("bias_correction",))]


# ------------------------------------------------------------------------------------- the space
def formats_in(space: Space) -> set[str]:
    return {f for pair in space.format_pairs() for f in pair}


def test_space_enumerates_every_split():
    space = Space(weight_bits=(4,), act_bits=(3, 4), techniques=((), ("mse",)))
    pairs = space.format_pairs()
    # W: INT4 E1M2 E2M1 E3M0; A(3): INT3 E1M1 E2M0; A(4): INT4 E1M2 E2M1 E3M0 -> 4*3 + 4*4
    assert len(pairs) == 28 and ("E3M0", "E2M0") in pairs and ("INT4", "E1M1") in pairs
    assert len(space.points()) == 56
    same_kind = Space(weight_bits=(4,), act_bits=(4,), mixed_kinds=False)
    assert len(same_kind.format_pairs()) == 1 + 9
    family = Space(weight_bits=(4,), act_bits=(6,), mixed_kinds=False, pairing="same_exponent")
    assert family.format_pairs() == [("INT4", "INT6"), ("E1M2", "E1M4"), ("E2M1", "E2M3"), ("E3M0", "E3M2")]
    assert len(Space(weight_bits=(5, 6), act_bits=(5, 6), bit_pairs="diagonal", kinds=("int",)).points()) == 2
    assert len(preset("default").points()) == 32  # (INTn + E2 minifloat) x widths 3, 4, 6, 8 crossed, per kind
    assert formats_in(Space(weight_bits=(5,), act_bits=(5,), min_exponent=2, max_exponent=3)) == {"INT5", "E2M2", "E3M1"}
    with pytest.raises(ValueError, match="unknown PTQ technique"):
        Space(techniques=(("magic",),))
    with pytest.raises(ValueError, match="bit_pairs"):
        Space(bit_pairs="some")
    with pytest.raises(ValueError, match="preset"):
        preset("huge")


# ---------------------------------------------------------------------------------- cost model
def test_analytic_mac_cost_matches_its_formula():
    # INT8 x INT8, fan-in 64: 8*8 multiplier + (8+8+6)-bit accumulator
    assert analytic_mac_cost("INT8", "INT8", 64)["LUT"] == 64 + 22
    # E2M1 x E2M1: mult 2*2, sign 1, exponent add 3 + detect 2, shift: P = 5+5, range 3+3 -> 3 stages
    # -> ceil(3/2) = 2 LUT levels * 10, accumulator 10 + 6
    c = analytic_mac_cost("E2M1", "E2M1", 64)
    assert (c["mult"], c["exp"], c["shift"], c["acc"]) == (4, 5, 20, 16)
    assert c["LUT"] == 4 + 1 + 5 + 20 + 16
    # E4M3: a 19-bit embedding each -> a 44-bit accumulator dominates
    assert analytic_mac_cost("E4M3", "E4M3", 64)["acc"] == 19 + 19 + 6
    # an E1 minifloat has a uniform grid: it costs what the integer of its embedding costs
    assert analytic_mac_cost("E1M2", "E1M2") == analytic_mac_cost("INT4", "INT4")
    # mixed: integer weights, minifloat activations: no exponent adder, shift by the activation's exponent
    mixed = analytic_mac_cost("INT4", "E2M1_U", 16)
    assert mixed["exp"] == 1 and mixed["mult"] == 4 * 2
    layers = [{"input_format": "UINT4", "fan_in": 16, "macs": 1000}, {"input_format": "UINT4", "fan_in": 16, "macs": 3000}]
    total = model_mac_cost(layers, "INT4", fps=1e5, clock_mhz=100)
    per = analytic_mac_cost("INT4", "UINT4", 16)["LUT"]
    assert total["mac_lut"] == pytest.approx(per)
    assert total["mac_lut_at_fps"] == pytest.approx(per * (math.ceil(1000 * 1e5 / 1e8) + math.ceil(3000 * 1e5 / 1e8)))


def test_pareto_front():
    rows = [{"finn_lut": 10, "accuracy": 0.5}, {"finn_lut": 20, "accuracy": 0.4}, {"finn_lut": 30, "accuracy": 0.9},
            {"finn_lut": None, "accuracy": 1.0}, {"finn_lut": 5, "accuracy": None}, {"finn_lut": 30, "accuracy": 0.8}]
    assert [(r["finn_lut"], r["accuracy"]) for r in pareto_front(rows)] == [(10, 0.5), (30, 0.9)]


# ---------------------------------------------------------------------------------- workloads
def test_load_model_forms_and_errors(tmp_path):
    torch.manual_seed(0)
    model = load_model(MLP)
    ckpt = tmp_path / "whole.pt"
    torch.save(model, ckpt)
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(load_model(str(ckpt))(x), model(x))
    sd = tmp_path / "sd.pt"
    torch.save(model.state_dict(), sd)
    assert torch.equal(load_model(MLP, str(sd))(x), model(x))
    with pytest.raises(ValueError, match="cannot load model factory"):
        load_model("brevitas_minifloat.dse.workload:nope")
    with pytest.raises(ValueError, match="neither"):
        load_model(str(tmp_path / "missing.pt"))
    torch.save(model.state_dict(), tmp_path / "only_sd.pt")
    with pytest.raises(ValueError, match="not a pickled nn.Module"):
        load_model(str(tmp_path / "only_sd.pt"))
    before = Workload(model=MLP, weights=str(sd)).fingerprint()
    torch.save({k: v + 1 for k, v in model.state_dict().items()}, sd)
    assert Workload(model=MLP, weights=str(sd)).fingerprint() != before  # new weights: cache misses
    # files count by content: another path to the same file (or another display name) hits the cache
    other = tmp_path / "sub" / ".." / "sd.pt"
    (tmp_path / "sub").mkdir()
    assert Workload(model=MLP, weights=str(other), name="x").fingerprint() == Workload(model=MLP, weights=str(sd)).fingerprint()


# ------------------------------------------------------------------------------------- sweeps
def test_sweep_records_refusals_writes_report_and_resumes(workload, tmp_path):
    """FINN estimates for two pairs: INT4 builds; E4M3 activations are refused with the integer
    embedding (491,520 thresholds, recorded as data) and build as native layers, a row per mapping.
    A second run computes nothing; an extra point computes only itself."""
    finn = finn_available()
    points = [Point("INT4", "INT4"), Point("E2M1", "E4M3")]
    ex = CountingExecutor()
    result = run_dse(workload, points, tmp_path, executor=ex, finn=finn, progress=False, calibration_seeds=1)
    assert sorted(ex.calls) == sorted(["float_accuracy_job", "accuracy_job", "accuracy_job"]
                                      + (["hardware_job"] * 3 if finn else []))
    assert 0.8 < result.fp32_accuracy <= 1
    int4, e4m3, e4m3_native = result.rows
    assert [r["mapping"] for r in result.rows] == ["integer", "embedding", "native"]
    assert e4m3_native["accuracy"] == e4m3["accuracy"]
    for row in result.rows:
        assert row["status"] == "ok" and 0.5 < row["accuracy"] <= 1
        assert row["accuracy_drop"] == pytest.approx(result.fp32_accuracy - row["accuracy"])
        assert row["mac_lut"] > 0 and row["mac_lut_at_fps"] > 0
    assert e4m3["a_int_bits"] == 19 and e4m3["kind"] == "minifloat"
    if finn:
        assert int4["hw_status"] == "ok" and int4["finn_lut"] > 0 and int4["finn_max_cycles"] > 0
        assert e4m3["hw_status"] == "not lowerable" and "threshold" in e4m3["hw_reason"].lower()
        assert e4m3["finn_lut"] is None
        assert e4m3_native["hw_status"] == "ok", e4m3_native["hw_reason"]
        assert e4m3_native["finn_lut"] > 0 and e4m3_native["finn_mvau_lut"] > 0
        assert int4 in result.frontier and e4m3 not in result.frontier
        assert result.frontier == sorted(result.frontier, key=lambda r: r["finn_lut"])
    for name in ("results.csv", "results.json", "frontier.csv", "accuracy_vs_lut.png", "heatmap.png", "summary.txt"):
        assert (tmp_path / name).is_file(), name
    doc = json.loads((tmp_path / "results.json").read_text())
    assert len(doc["rows"]) == 3 and doc["fp32_accuracy"] == result.fp32_accuracy
    assert (tmp_path / "results.csv").read_text().splitlines()[0].startswith("weights,activations,techniques")
    cache_files = list((tmp_path / "cache").rglob("*.json"))
    assert cache_files and all(json.loads(f.read_text())["key"]["workload"] for f in cache_files)  # plain JSON

    again = CountingExecutor()
    resumed = run_dse(workload, points, tmp_path, executor=again, finn=finn, progress=False, calibration_seeds=1)
    assert again.calls == [] and resumed.stats["jobs_cached"] == len(ex.calls)
    assert [r["accuracy"] for r in resumed.rows] == [r["accuracy"] for r in result.rows]

    more = CountingExecutor()
    run_dse(workload, points + [Point("INT4", "INT4", ("bias_correction",))], tmp_path, executor=more, finn=finn,
            progress=False, calibration_seeds=1)
    assert more.calls == ["accuracy_job"]  # same formats: the FINN estimate is shared
    if finn:  # a refit native cost model (or a new MAC generator) misses the native build, nothing else
        from finn_transforms.native import cost_fit

        coefficients = {k: dict(v) for k, v in cost_fit.COEFFICIENTS.items()}
        coefficients["lut"]["mul"] += 1.0
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(cost_fit, "COEFFICIENTS", coefficients)
            refit = CountingExecutor()
            run_dse(workload, points, tmp_path, executor=refit, finn=finn, progress=False, calibration_seeds=1)
        assert refit.calls == ["hardware_job"]


def test_failed_builds_are_rebuilt_not_reused_from_the_cache(workload, tmp_path, monkeypatch):
    """A failed FINN build is reported but not cached, and a failure an older version cached is ignored:
    a fix of our steps changes no cache key (fashion_cnv's E5M2 native build). Refusals stay cached."""
    from brevitas_minifloat.dse import jobs

    outcomes = iter([{"status": "build failed", "reason": "FinnBuildError: INT70", "step": "s"},
                     {"status": "not lowerable", "reason": "LoweringError: refused"},
                     {"status": "ok", "finn_lut": 5.0}])
    monkeypatch.setattr(jobs, "hardware_job", lambda *args: next(outcomes))
    point = [Point("INT4", "INT4")]

    def run():
        ex = CountingExecutor()
        result = run_dse(workload, point, None, cache_dir=tmp_path, executor=ex, progress=False, calibration_seeds=1, report=False)
        return result.rows[0]["hw_status"], ex.calls

    assert run() == ("build failed", ["<lambda>", "float_accuracy_job", "accuracy_job"])
    hardware = list(tmp_path.glob("hardware_*.json"))
    assert hardware == [] and run() == ("not lowerable", ["<lambda>"])  # rebuilt
    assert run() == ("not lowerable", [])  # a refusal is cached
    (path,) = tmp_path.glob("hardware_*.json")
    stored = json.loads(path.read_text())
    stored["result"] = {"status": "build failed", "reason": "cached by an older version"}
    path.write_text(json.dumps(stored))
    assert run() == ("ok", ["<lambda>"])


def test_mac_cost_hook_and_no_finn(workload, tmp_path):
    calls = []

    def measured(weight, act, fan_in):
        calls.append((weight, act, fan_in))
        return {"LUT": 7.0}

    result = run_dse(workload, [Point("INT4", "E2M1")], None, executor=InlineExecutor(), finn=False,
                     mac_cost=measured, progress=False)
    row = result.rows[0]
    assert row["kind"] == "mixed" and row["mac_lut"] == 7.0 and row["hw_status"] is None
    # the MLP's two layers: the flattened image (unsigned E2M2_U) and the ReLU output
    assert calls == [("INT4", "E2M2_U", 784), ("INT4", "E2M2_U", 64)]


def _accuracies(result):
    return {(r["weights"], r["activations"], r["techniques"]): (r["accuracy"], r["output_mse"]) for r in result.rows}


def test_process_pool_and_threads_give_the_inline_results(workload):
    inline = run_dse(workload, POINTS, None, executor=InlineExecutor(), finn=False, progress=False)
    pooled = run_dse(workload, POINTS, None, workers=2, finn=False, progress=False)  # the default process pool
    assert pooled.stats["executor"] == "ProcessPoolExecutor"
    assert _accuracies(pooled) == _accuracies(inline)
    with ThreadPoolExecutor(2) as threads:
        threaded = run_dse(workload, POINTS[:1], None, executor=threads, finn=False, progress=False)
    assert _accuracies(threaded) == {k: v for k, v in _accuracies(inline).items() if k[0] == "INT4"}


def test_dask_cluster_executor(workload):
    distributed = pytest.importorskip("distributed")
    inline = run_dse(workload, POINTS[:2], None, executor=InlineExecutor(), finn=False, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        result = run_dse(workload, POINTS[:2], None, executor=client.get_executor(), finn=False, progress=False)
    assert result.stats["executor"] == "ClientExecutor"
    assert _accuracies(result) == _accuracies(inline)


# ------------------------------------------------------------------------- measured MAC columns
def test_folded_mac_lut_matches_layers_to_mvaus():
    units = [{"name": "fc1", "fan_in": 16, "macs": 160, "lut_per_mac": 10.0},
             {"name": "fc2", "fan_in": 10, "macs": 30, "lut_per_mac": 4.0}]
    mvaus = [{"name": "MVAU_hls_0", "op_type": "MVAU_hls", "pe": 2, "simd": 4, "mw": 16},
             {"name": "Thresholding_rtl_0", "op_type": "Thresholding_rtl", "pe": 1, "simd": None},
             {"name": "MVAU_hls_1", "op_type": "MVAU_hls", "pe": 1, "simd": 5, "mw": 10}]
    assert folded_mac_lut(units, mvaus) == (10.0 * 8 + 4.0 * 5, None)
    assert mean_lut_per_mac(units) == pytest.approx((10 * 160 + 4 * 30) / 190)
    luts, reason = folded_mac_lut(units[:1], mvaus)
    assert luts is None and "2 MVAUs" in reason
    luts, reason = folded_mac_lut(units, [mvaus[0], {**mvaus[2], "mw": 12}])
    assert luts is None and "MW=12" in reason and "fc2" in reason


@pytest.mark.needs_yosys
def test_measured_mac_columns_use_synthesized_units_and_finn_folding(workload, tmp_path, monkeypatch):
    """yosys_lut_folded = sum over MVAUs of the synthesized unit's LUTs x PE x SIMD read from FINN's graph."""
    from brevitas_minifloat.hw.cost import mac_cost

    monkeypatch.setenv("BREVITAS_MINIFLOAT_HW_CACHE", str(tmp_path / "hw_cache"))
    finn = finn_available()
    points = [Point("INT4", "INT4"), Point("E2M1", "E2M1")]
    result = run_dse(workload, points, tmp_path, executor=InlineExecutor(), finn=finn, progress=False,
                     measured_mac="shift", keep_builds=True)
    for row in result.rows:
        assert row["yosys_status"] == "ok", row.get("yosys_reason")
        if not finn:
            assert row["yosys_lut_folded"] is None
            continue
        slug = f"W_{row['weights']}_A_{row['activations']}_{'embedding' if row['mapping'] == 'integer' else row['mapping']}"
        graph = onnx.load(str(tmp_path / "builds" / slug / "finn"
                              / "intermediate_models" / "step_generate_estimate_reports.onnx"))
        mvaus = [n for n in graph.graph.node if n.op_type.startswith("MVAU")]  # FINN's and native (MVAU_minifloat)
        act = {"INT4": "UINT4", "E2M1": "E2M2_U"}[row["activations"]]
        expected = 0.0
        for node in mvaus:
            attr = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            # every layer of the MLP reads an unsigned activation quantizer (the image, then ReLUs)
            unit = mac_cost(row["weights"], act, fan_in=attr["MW"], arch="shift")
            assert unit["cached"]  # the DSE job synthesized exactly this unit
            expected += unit["LUT_per_MAC"] * attr["PE"] * attr["SIMD"]
        assert len(mvaus) >= 2 and row["yosys_lut_folded"] == pytest.approx(expected)
        assert row["finn_mvau_lut"] > 0 and row["yosys_mac_lut"] > 0
    int4, e2m1 = result.rows[:2]
    assert [r["mapping"] for r in result.rows] == (["integer", "embedding", "native"] if finn else [None, None])
    assert e2m1["yosys_mac_lut"] > int4["yosys_mac_lut"]  # the exponent shifter is not free
    assert "yosys_lut_folded" in (tmp_path / "results.csv").read_text().splitlines()[0]


def test_measured_mac_without_yosys_is_recorded(workload, tmp_path, monkeypatch):
    import brevitas_minifloat.hw.cost as hw_cost

    monkeypatch.setattr(hw_cost, "yosys_missing", lambda: "yosys not found on PATH (apt-get install yosys)")
    result = run_dse(workload, [Point("INT4", "INT4")], None, executor=InlineExecutor(), finn=False,
                     progress=False, measured_mac="decode")
    (row,) = result.rows
    assert row["yosys_status"] == "yosys missing" and "apt-get install yosys" in row["yosys_reason"]
    assert row["yosys_mac_lut"] is None and row["accuracy"] is not None
    with pytest.raises(ValueError, match="measured_mac"):
        run_dse(workload, [Point("INT4", "INT4")], None, executor=InlineExecutor(), finn=False, measured_mac="fast")


# ------------------------------------------------------------------------------- statistics
def test_intervals_calibration_spread_and_frontier_marks(workload):
    """Each row's accuracy equals an independent PTQ + evaluation of the same point (seed-0 calibration
    sample); its Wilson interval brackets it; frontier points are re-quantized on 2 more calibration
    samples (only they: 3 accuracy jobs each) and marked against their cheaper neighbour."""
    from brevitas_minifloat.dse.stats import wilson_interval
    from brevitas_minifloat.ptq import quantize
    from brevitas_minifloat.training import accuracy

    ex = CountingExecutor()
    points = [Point("INT3", "INT3"), Point("INT4", "INT4"), Point("E2M1", "E2M1")]
    result = run_dse(workload, points, None, executor=ex, finn=False, progress=False)
    model, _, xte, yte = workload.load()
    calib0, calib1 = workload.calibration_batch(0), workload.calibration_batch(1)
    assert calib0.shape == calib1.shape == (128, 1, 28, 28) and not torch.equal(calib0, calib1)
    n = len(xte)
    for p, row in zip(points, result.rows):
        q = quantize(model, calib0, weights=p.weights, activations=p.activations, techniques=())
        assert row["accuracy"] == accuracy(q, xte, yte)
        assert (row["acc_lo"], row["acc_hi"]) == wilson_interval(round(row["accuracy"] * n), n)
    front = {r["point"] for r in result.frontier}
    assert ex.calls.count("accuracy_job") == len(points) + 2 * len(front)
    for row in result.rows:
        if row["point"] in front:
            accs = row["calib_accuracies"]
            assert len(accs) == 3 and accs[0] == row["accuracy"] and row["calib_min"] == min(accs)
        else:
            assert row.get("calib_accuracies") is None and row["calib_min"] is None
    assert result.frontier[0]["frontier_p"] is None
    for prev, row in zip(result.frontier, result.frontier[1:]):
        test = result.paired_test(prev, row)
        assert row["frontier_p"] == round(test["p"], 5) and row["frontier_distinct"] == (test["p"] < 0.05)
    # the float model is paired too: its correct count is its accuracy
    fp = result.paired_test(None, result.rows[0])
    assert fp["a_only"] - fp["b_only"] == round((result.fp32_accuracy - result.rows[0]["accuracy"]) * n)
    every = run_dse(workload, points[:1], None, executor=InlineExecutor(), finn=False, progress=False,
                    spread="all", calibration_seeds=2)
    assert len(every.rows[0]["calib_accuracies"]) == 2
    with pytest.raises(ValueError, match="spread"):
        run_dse(workload, points, None, executor=InlineExecutor(), finn=False, spread="some")
