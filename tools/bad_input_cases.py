#!/usr/bin/env python3
"""Writes ~220 broken scenario files (and a few good ones) into OUT_DIR: for every section,
unknown keys with did-you-mean hints, wrong types, out-of-range values and wrong units,
missing and misplaced keys, duplicates, and errors whose report depends on the order
sections and keys are read in. tools/golden_outputs.sh records what `orrery check` (and
`orrery sweep` for the sweep cases) says about each, so a change meant to keep behaviour
is checked on bad input too. Deterministic; needs only Python 3.

Usage: tools/bad_input_cases.py OUT_DIR
"""
import copy, json, os, sys


def dump_yaml(d, f, indent=0):
    """Block-style YAML of dicts, lists and scalars (strings quoted as JSON strings)."""
    pad = "  " * indent
    for k, v in d.items():
        if isinstance(v, dict) and v:
            f.write(f"{pad}{k}:\n")
            dump_yaml(v, f, indent + 1)
        else:
            f.write(f"{pad}{k}: {scalar(v)}\n")


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    return json.dumps(v)  # lists and empty mappings in flow style
D = object()  # delete marker
base = {
 "name": "bad", "description": "x",
 "cluster": {"preset": "dgx-h100", "nodes": 2,
   "gpu": {"preset": "h100-sxm5-80gb", "memory": "80 GiB", "peak": {"bf16": "989 TFLOP/s"},
           "gemm_efficiency": {"bf16": 0.8}},
   "intra_node": {"bandwidth": "450 GB/s"}, "inter_node": {"nics_per_node": 8}},
 "model": {"preset": "llama3-8b"},
 "parallelism": {"tp": 8, "pp": 1, "dp": 2, "microbatch": 1, "global_batch": 32},
 "training": {"precision": "bf16", "target": {"tokens": 1e10}},
 "cost": {"usd_per_gpu_hour": 3.0, "gpu_power": "700 W"},
 "simulation": {"compute_slowdown": 0.1},
 "reliability": {"checkpoint_bandwidth": "10 GB/s", "restart_time": "10 min"},
}
def merge(d, m):
    d = copy.deepcopy(d)
    for k, v in m.items():
        if v is D: d.pop(k, None)
        elif isinstance(v, dict) and isinstance(d.get(k), dict): d[k] = merge(d[k], v)
        else: d[k] = v
    return d
C = {}
def c(name, m): C[name] = merge(base, m)
c("ok", {})
# top level
c("top_unknown", {"clustr": 1}); c("top_unknown2", {"faultz": []}); c("top_noname", {"name": D})
c("top_name_list", {"name": [1]}); c("top_desc_map", {"description": {"a": 1}})
c("top_missing_cluster", {"cluster": D}); c("top_missing_model", {"model": D})
c("top_missing_par", {"parallelism": D}); c("top_cluster_list", {"cluster": [1]})
c("top_cluster_badpreset", {"cluster": "dgx-h10"}); c("top_model_scalar", {"model": "llama3-8b"})
c("top_training_scalar", {"training": "x"}); c("top_cost_scalar", {"cost": 3})
c("top_measured_scalar", {"measured": 3}); c("top_sweep_scalar", {"sweep": 3})
c("top_multi", {"clustr": 1, "cost": {"pue": 0}})
# cluster / gpu
c("cl_unknown", {"cluster": {"node": 2}}); c("cl_unknown2", {"cluster": {"calibratoin": "x"}})
c("cl_nodes_neg", {"cluster": {"nodes": -1}}); c("cl_nodes_str", {"cluster": {"nodes": "two"}})
c("cl_gpn_big", {"cluster": {"gpus_per_node": 2000}}); c("cl_cal_list", {"cluster": {"calibration": [1]}})
c("cl_cal_missing", {"cluster": {"calibration": "nope.yaml"}})
c("cl_cal_and_intra_bad", {"cluster": {"calibration": [1], "intra_node": {"bandwidth": "x"}}})
c("cl_intra_bad_then_cal", {"cluster": {"calibration": "nope.yaml", "intra_node": {"bandwidth": "x"}}})
c("cl_intra_and_inter_bad", {"cluster": {"intra_node": {"latency": 5}, "inter_node": {"latency": 5}}})
c("cl_intra_and_nodes_bad", {"cluster": {"nodes": 0, "intra_node": {"bandwidth": "x"}}})
c("cl_gpu_and_nodes_bad", {"cluster": {"nodes": 0, "gpu": {"memory": "1 KiB"}}})
c("cl_preset_bad", {"cluster": {"preset": "dgx-h1000"}}); c("cl_preset_list", {"cluster": {"preset": [1]}})
c("gpu_unknown", {"cluster": {"gpu": {"memroy": "80 GiB"}}}); c("gpu_unknown2", {"cluster": {"gpu": {"zzz": 1}}})
c("gpu_scalar_bad", {"cluster": {"gpu": "h100-sxn"}}); c("gpu_scalar_ok", {"cluster": {"gpu": "a100-sxm4-80gb"}})
c("gpu_list", {"cluster": {"gpu": [1, 2]}}); c("gpu_preset_bad", {"cluster": {"gpu": {"preset": "h10"}}})
c("gpu_name_list", {"cluster": {"gpu": {"name": [1]}}}); c("gpu_memory_unit", {"cluster": {"gpu": {"memory": "80"}}})
c("gpu_memory_wrongdim", {"cluster": {"gpu": {"memory": "80 GB/s"}}}); c("gpu_memory_small", {"cluster": {"gpu": {"memory": "1 KiB"}}})
c("gpu_mbw", {"cluster": {"gpu": {"memory_bandwidth": "1 B/s"}}}); c("gpu_tdp", {"cluster": {"gpu": {"tdp": "0 W"}}})
c("gpu_tdp_str", {"cluster": {"gpu": {"tdp": "abc"}}})
c("gpu_peak_unknown", {"cluster": {"gpu": {"peak": {"bf61": "1 PFLOP/s"}}}}); c("gpu_peak_unknown2", {"cluster": {"gpu": {"peak": {"int8": "1 PFLOP/s"}}}})
c("gpu_peak_scalar", {"cluster": {"gpu": {"peak": "1 PFLOP/s"}}}); c("gpu_peak_low", {"cluster": {"gpu": {"peak": {"fp8": "1 FLOP/s"}}}})
c("gpu_peak_unit", {"cluster": {"gpu": {"peak": {"fp4": "1 GB"}}}})
c("gpu_peak_two_bad", {"cluster": {"gpu": {"peak": {"fp4": "x", "fp32": "y"}}}})
c("gpu_geff_unknown", {"cluster": {"gpu": {"gemm_efficiency": {"fp9": 0.5}}}}); c("gpu_geff_range", {"cluster": {"gpu": {"gemm_efficiency": {"fp16": 2}}}})
c("gpu_geff_list", {"cluster": {"gpu": {"gemm_efficiency": [0.5]}}})
c("gpu_geff_and_peak_bad", {"cluster": {"gpu": {"gemm_efficiency": {"fp16": 2}, "peak": {"fp16": "x"}, "memory": "1 B"}}})
c("gpu_ramp_empty", {"cluster": {"gpu": {"gemm_ramp": []}}}); c("gpu_ramp_bad", {"cluster": {"gpu": {"gemm_ramp": [["1 us", 2]]}}})
c("gpu_ramp_dec", {"cluster": {"gpu": {"gemm_ramp": [["2 us", 0.5], ["1 us", 0.6]]}}}); c("gpu_ramp_ok", {"cluster": {"gpu": {"gemm_ramp": [["1 us", 0.5], ["2 us", 0.9]]}}})
c("gpu_ramp_scalar", {"cluster": {"gpu": {"gemm_ramp": 3}}})
c("gpu_att", {"cluster": {"gpu": {"attention_efficiency": 0}}}); c("gpu_mem_eff", {"cluster": {"gpu": {"memory_efficiency": "x"}}})
c("gpu_host", {"cluster": {"gpu": {"host_overhead": "2 ms"}}}); c("gpu_host_unit", {"cluster": {"gpu": {"host_overhead": 13.48}}})
c("gpu_unaligned", {"cluster": {"gpu": {"unaligned_gemm_efficiency": 0}}}); c("gpu_unaligned_ok", {"cluster": {"gpu": {"unaligned_gemm_efficiency": 0.2, "host_overhead": "20 us"}}})
c("gpu_launch", {"cluster": {"gpu": {"kernel_launch": "2 s"}}}); c("gpu_launch_ok", {"cluster": {"gpu": {"kernel_launch": "3 us", "attention_efficiency": 0.5, "memory_efficiency": 0.9}}})
c("gpu_full_nopreset", {"cluster": {"preset": D, "gpus_per_node": 8, "gpu": {"preset": D, "name": "X", "memory": "80 GiB", "memory_bandwidth": "3 TB/s", "tdp": "700 W", "peak": {"bf16": "989 TFLOP/s"}}}})
c("intra_unknown", {"cluster": {"intra_node": {"bandwith": "1 GB/s"}}}); c("intra_scalar", {"cluster": {"intra_node": 3}})
c("intra_lat", {"cluster": {"intra_node": {"latency": "5 s"}}}); c("intra_nvls", {"cluster": {"intra_node": {"nvls": "maybe"}}})
c("intra_eff", {"cluster": {"intra_node": {"efficiency": 0}}}); c("intra_curve_bad", {"cluster": {"intra_node": {"bus_bandwidth_curve": [["1 MB", 0]]}}})
c("intra_curve_empty", {"cluster": {"intra_node": {"bus_bandwidth_curve": []}}}); c("intra_curve_ok", {"cluster": {"intra_node": {"bus_bandwidth_curve": [["1 MiB", 0.5], ["1 GiB", 0.9]]}}})
c("intra_curve_map", {"cluster": {"intra_node": {"bus_bandwidth_curve": {"a": 1}}}})
c("inter_unknown", {"cluster": {"inter_node": {"nic_per_node": 1}}}); c("inter_nics", {"cluster": {"inter_node": {"nics_per_node": 65}}})
c("inter_bw", {"cluster": {"inter_node": {"nic_bandwidth": "400 Gb"}}}); c("inter_topo", {"cluster": {"inter_node": {"topology": "fat-tree"}}})
c("inter_topo_ok", {"cluster": {"inter_node": {"topology": "fat_tree", "oversubscription": 2, "background_load": 0.3, "efficiency": 0.9}}})
c("inter_over", {"cluster": {"inter_node": {"oversubscription": 0.5}}}); c("inter_bg", {"cluster": {"inter_node": {"background_load": 1}}})
c("inter_eff", {"cluster": {"inter_node": {"efficiency": [1]}}})
# cost / simulation / measured
c("cost_unknown", {"cost": {"usd_per_gpu_hr": 1}}); c("cost_price", {"cost": {"usd_per_gpu_hour": -1}})
c("cost_power", {"cost": {"gpu_power": "0.5 W"}}); c("cost_idle", {"cost": {"gpu_idle_power": "x"}})
c("cost_node", {"cost": {"node_power": "2 MW"}}); c("cost_pue", {"cost": {"pue": 0.5}}); c("cost_grid", {"cost": {"grid_gco2_per_kwh": "lots"}})
c("cost_all_ok", {"cost": {"usd_per_gpu_hour": 2, "gpu_power": "600 W", "gpu_idle_power": "100 W", "node_power": "1 kW", "pue": 1.2, "grid_gco2_per_kwh": 400}})
c("cost_two_bad", {"cost": {"pue": 0.5, "usd_per_gpu_hour": -1}}); c("cost_list", {"cost": [1]})
c("sim_unknown", {"simulation": {"compute_slow": 0.1}}); c("sim_range", {"simulation": {"comm_slowdown": 1}})
c("sim_ok", {"simulation": {"comm_slowdown": 0.2, "compute_slowdown": 0.0}}); c("sim_two_bad", {"simulation": {"comm_slowdown": 1, "compute_slowdown": 1}})
c("meas_ok", {"measured": {"metric": "mfu", "value": 0.4, "source": "paper"}})
c("meas_unknown", {"measured": {"metric": "mfu", "value": 0.4, "sourc": "p"}})
c("meas_no_metric", {"measured": {"value": 0.4, "source": "p"}}); c("meas_no_value", {"measured": {"metric": "mfu", "source": "p"}})
c("meas_no_source", {"measured": {"metric": "mfu", "value": 0.4}}); c("meas_empty_source", {"measured": {"metric": "mfu", "value": 0.4, "source": ""}})
c("meas_bad_metric", {"measured": {"metric": "mfy", "value": 0.4, "source": "p"}}); c("meas_bad_value", {"measured": {"metric": "mfu", "value": 0, "source": "p"}})
c("meas_bad_value_no_source", {"measured": {"metric": "mfu", "value": "x"}}); c("meas_none", {"measured": {}})
c("meas_src_list", {"measured": {"metric": "mfu", "value": 1, "source": [1]}})
# reliability
c("rel_unknown", {"reliability": {"gpu_mtbf": "1 h", "checkpoint_bw": 1}}); c("rel_no_bw", {"reliability": {"checkpoint_bandwidth": D}})
c("rel_no_restart", {"reliability": {"restart_time": D}}); c("rel_none", {"reliability": {}})
c("rel_mtbf_bad_no_bw", {"reliability": {"gpu_mtbf": "0 s", "checkpoint_bandwidth": D}})
c("rel_bw_bad_no_restart", {"reliability": {"checkpoint_bandwidth": "x", "restart_time": D}})
c("rel_bw_bad", {"reliability": {"checkpoint_bandwidth": "1 B/s"}}); c("rel_restart_bad", {"reliability": {"restart_time": "x"}})
c("rel_interval_bad", {"reliability": {"checkpoint_interval": "0.5 s"}}); c("rel_ok", {"reliability": {"checkpoint_interval": "1 h", "gpu_mtbf": "1000 h"}})
c("rel_scalar", {"reliability": 1})
# faults
F = lambda *fs: {"faults": list(fs)}
c("f_scalar", {"faults": 3}); c("f_map", {"faults": {"kind": "straggler"}}); c("f_item_scalar", F(3))
c("f_unknown", F({"kind": "straggler", "stage": 0, "factr": 0.5})); c("f_nokind", F({"stage": 0, "factor": 0.5}))
c("f_badkind", F({"kind": "stragler", "stage": 0, "factor": 0.5}))
c("f_str_ok", F({"kind": "straggler", "stage": 0, "factor": 0.5, "from": "1 ms", "until": "2 ms"}))
c("f_str_nostage", F({"kind": "straggler", "factor": 0.5})); c("f_str_nofactor", F({"kind": "straggler", "stage": 0}))
c("f_str_link", F({"kind": "straggler", "stage": 0, "factor": 0.5, "link": "spine"}))
c("f_str_gpu_nic", F({"kind": "straggler", "stage": 0, "factor": 0.5, "nic": 1, "gpu": 1}))
c("f_str_badstage_nofactor", F({"kind": "straggler", "stage": -1}))
c("f_str_until", F({"kind": "straggler", "stage": 0, "factor": 0.5, "from": "2 ms", "until": "1 ms"}))
c("f_str_factor", F({"kind": "straggler", "stage": 0, "factor": 2}))
c("f_sl_ok", F({"kind": "slow_link", "link": "spine", "leaf": 0, "factor": 0.5}))
c("f_sl_nolink", F({"kind": "slow_link", "factor": 0.5})); c("f_sl_badlink_nofactor", F({"kind": "slow_link", "link": "spin"}))
c("f_sl_stage", F({"kind": "slow_link", "link": "spine", "factor": 0.5, "stage": 1, "lost": 1}))
c("f_sl_gpu", F({"kind": "slow_link", "link": "nvlink", "factor": 0.5, "node": 0, "gpu": 99}))
c("f_fl_ok", F({"kind": "failed_link", "link": "spine", "leaf": 0, "lost": 1}))
c("f_fl_nic_ok", F({"kind": "failed_link", "link": "nic", "node": 0, "nic": 0}))
c("f_fl_nolink", F({"kind": "failed_link", "leaf": 0})); c("f_fl_nvlink", F({"kind": "failed_link", "link": "nvlink", "leaf": 0}))
c("f_fl_nic_leaf", F({"kind": "failed_link", "link": "nic", "node": 0, "nic": 0, "leaf": 1}))
c("f_fl_spine_nic", F({"kind": "failed_link", "link": "spine", "leaf": 0, "nic": 1}))
c("f_fl_nic_nonic", F({"kind": "failed_link", "link": "nic", "node": 0})); c("f_fl_nic_nonode", F({"kind": "failed_link", "link": "nic", "nic": 0}))
c("f_fl_spine_noleaf", F({"kind": "failed_link", "link": "spine"})); c("f_fl_nic_from", F({"kind": "failed_link", "link": "nic", "node": 0, "nic": 0, "from": "1 ms"}))
c("f_fl_factor", F({"kind": "failed_link", "link": "spine", "leaf": 0, "factor": 0.5}))
c("f_fl_lost_bad", F({"kind": "failed_link", "link": "spine", "leaf": 0, "lost": 0}))
c("f_fn_ok", F({"kind": "failed_node", "node": 1})); c("f_fn_nonode", F({"kind": "failed_node"}))
c("f_fn_leaf", F({"kind": "failed_node", "node": 1, "leaf": 0})); c("f_fn_node_bad", F({"kind": "failed_node", "node": "x"}))
c("f_two", F({"kind": "failed_node", "node": 1}, {"kind": "straggler", "stage": 0}))
c("f_kind_list", F({"kind": ["straggler"]}))
# sweep
S = lambda m: {"sweep": m}
c("s_ok", S({"tp": [1, 2], "pp": "auto", "top": 3})); c("s_unknown", S({"tpp": [1]})); c("s_empty", S({}))
c("s_only_top", S({"top": 3, "objectives": "step_time"})); c("s_only_constraints", S({"constraints": {"fits_memory": True}}))
c("s_range", S({"dp": {"from": 1, "to": 8, "factor": 2}})); c("s_range_both", S({"dp": {"from": 1, "to": 8, "factor": 2, "step": 1}}))
c("s_range_nofrom", S({"dp": {"to": 8}})); c("s_range_noto", S({"dp": {"from": 1}})); c("s_range_unknown", S({"dp": {"from": 1, "to": 2, "stp": 1}}))
c("s_range_badfrom_noto", S({"dp": {"from": "x"}})); c("s_range_below", S({"dp": {"from": 4, "to": 2}}))
c("s_auto_dp", S({"dp": "auto"})); c("s_int_bad", S({"tp": "x"})); c("s_int_range", S({"zero_stage": [4]}))
c("s_recompute", S({"recompute": ["full", "ful"]})); c("s_precision", S({"precision": "bf61"})); c("s_compression", S({"compression": ["powersgd", "x"]}))
c("s_gpu", S({"gpu": ["h100-sxm5-80gb", "h100-sxm"]})); c("s_gpu_ok", S({"gpu": "a100-sxm4-80gb"})); c("s_nodes", S({"nodes": [1, 0]}))
c("s_constraints_unknown", S({"tp": [1], "constraints": {"max_gpu": 3}})); c("s_constraints_bad", S({"tp": [1], "constraints": {"max_cost_usd": -1, "fits_memory": "y"}}))
c("s_constraints_ok", S({"tp": [1], "constraints": {"max_cost_usd": 100, "max_gpus": 16, "fits_memory": False}}))
c("s_objectives", S({"tp": [1], "objectives": ["step_time", "cots"]})); c("s_top", S({"tp": [1], "top": 0}))
c("s_order", S({"nodes": [0], "recompute": "x", "tp": "y"})); c("s_order2", S({"nodes": [0], "recompute": "x"}))
c("s_order3", S({"top": 0, "objectives": "x", "constraints": {"zz": 1}, "gpu": "q"}))
c("s_scalar", {"sweep": "tp"}); c("s_constraints_scalar", S({"tp": [1], "constraints": 1}))
c("s_mb_vp_gb", S({"microbatch": "auto", "vp": [1, 2], "global_batch": [16, 32], "zero_stage": {"from": 0, "to": 3}}))
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for n, d in C.items():
    with open(f"{out}/{n}.yaml", "w") as f: dump_yaml(d, f)
raw = {
 "dup_cost": "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 8}\ncost: {pue: 1, pue: 2}\n",
 "dup_top": "cluster: {preset: dgx-h100}\ncluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 8}\n",
 "nonscalar_key": "cluster: {preset: dgx-h100, [a]: 1}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 8}\n",
 "top_list": "- 1\n", "top_scalar": "hello\n", "empty": "",
 "gpu_null": "cluster: {preset: dgx-h100, gpu: }\nmodel: {preset: llama3-8b}\nparallelism: {tp: 8}\n",
 "meas_null_value": "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 8}\nmeasured: {metric: mfu, value: , source: x}\n",
}
for n, t in raw.items():
    with open(f"{out}/raw_{n}.yaml", "w") as f: f.write(t)
more = {
 "s_range_step_bad_both": S({"dp": {"from": 1, "to": 8, "step": "x", "factor": 2}}),
 "s_range_step": S({"dp": {"from": 1, "to": 8, "step": 3}}), "s_range_factor1": S({"dp": {"from": 1, "to": 8, "factor": 1}}),
 "s_range_from_big": S({"zero_stage": {"from": 5, "to": 1}}), "s_range_list_item": S({"dp": [{"from": 1}]}),
 "s_range_scalar_from": S({"tp": {"from": [1], "to": 2}}), "s_range_unknown_missing": S({"dp": {"stepp": 1}}),
 "s_constraints_two": S({"tp": [1], "constraints": {"max_gpus": 0, "max_cost_usd": -1}}),
 "s_gpu_list_map": S({"gpu": [{"a": 1}]}), "s_top_str": S({"tp": [1], "top": "x"}),
 "f_until_before_from_bad": F({"kind": "straggler", "stage": 0, "factor": 0.5, "from": "x", "until": "1 ms"}),
 "f_leaf_bad_gpu_bad": F({"kind": "slow_link", "link": "spine", "factor": 0.5, "gpu": "x", "leaf": "y"}),
 "f_link_bad_stage_bad": F({"kind": "straggler", "stage": "x", "factor": 0.5}),
 "f_sl_link_bad_factor_bad": F({"kind": "slow_link", "link": "x", "factor": 5}),
}
for n, d in more.items():
    with open(f"{out}/{n}.yaml", "w") as f: dump_yaml(merge(base, d), f)
more2 = {
 "v_rel_no_target": {"training": {"target": D}},
 "v_split_bad": {"parallelism": {"tp": 3}}, "v_training_bad_combo": {"training": {"precision": "fp8"}},
 "v_fault_stage_oob": F({"kind": "straggler", "stage": 9, "factor": 0.5}),
 "v_cost_idle_above": {"cost": {"gpu_idle_power": "900 W"}},
 "v_sweep_and_faults_bad": {"sweep": {"tp": "x"}, "faults": 3, "reliability": {"gpu_mtbf": "x"}, "simulation": {"comm_slowdown": 9}, "measured": {"metric": "x"}},
 "v_rel_sim_bad": {"reliability": {"gpu_mtbf": "x"}, "simulation": {"comm_slowdown": 9}},
 "v_sim_meas_bad": {"measured": {"metric": "x"}, "simulation": {"comm_slowdown": 9}},
 "v_meas_sweep_bad": {"measured": {"metric": "x"}, "sweep": {"tp": "x"}},
 "v_cost_faults_bad": {"cost": {"pue": 0}, "faults": 3},
 "v_training_cost_bad": {"cost": {"pue": 0}, "training": {"precision": "x"}},
 "v_model_par_bad": {"model": {"layers": 0}, "parallelism": {"tp": 0}, "name": [1]},
 "v_desc_missing_model": {"description": [1], "model": D},
}
for n, d in more2.items():
    with open(f"{out}/{n}.yaml", "w") as f: dump_yaml(merge(base, d), f)
