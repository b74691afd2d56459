"""The Python module against the command line: each function returns what the command
prints with --format json (the same dict, float for float), for a path, YAML text and a
dict; every scenario row of docs/errors.md raises orrery.Error with the command's message;
the GIL is free while a scenario is simulated; the docs' Python examples run.

Run by ctest (python.pytest) with PYTHONPATH at the built module, ORRERY_BINARY the built
`orrery` and the source tree as the working directory.
"""
import json
import os
import pathlib
import re
import subprocess
import threading
import time

import pytest

import orrery

SOURCE = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("ORRERY_BINARY", str(SOURCE / "build" / "cli" / "orrery"))
QUICKSTART = "scenarios/quickstart.yaml"
SMALL_SWEEP = "tests/sweep/data/small-sweep.yaml"


@pytest.fixture(autouse=True)
def in_source_tree(monkeypatch):
    monkeypatch.chdir(SOURCE)


def cli(*args):
    """stdout of `orrery ARGS`, which must succeed."""
    return subprocess.run([BINARY, *args], check=True, capture_output=True, text=True).stdout


def test_run_is_what_run_format_json_prints():
    text = cli("run", "--format", "json", QUICKSTART)
    assert orrery.run(QUICKSTART) == json.loads(text)
    # The figure the README's one-liner prints is the command's, digit for digit.
    printed = re.search(r'"step_time_s": ([^,\n]+)', text).group(1)
    assert repr(orrery.run(QUICKSTART)["step_time_s"]) == printed


def test_run_full_is_run_dash_dash_full():
    assert orrery.run(QUICKSTART, full=True) == json.loads(
        cli("run", "--full", "--format", "json", QUICKSTART))


def test_check_is_what_check_format_json_prints():
    assert orrery.check(QUICKSTART) == json.loads(cli("check", "--format", "json", QUICKSTART))


def test_a_path_yaml_text_and_a_dict_give_the_same_result():
    by_path = orrery.run(pathlib.Path(QUICKSTART))
    assert orrery.run(QUICKSTART) == by_path
    assert orrery.run((SOURCE / QUICKSTART).read_text()) == by_path
    # scenarios/quickstart.yaml, key for key.
    scenario = {
        "name": "Llama 3 70B on 4x DGX H100 (TP8 PP4)",
        "cluster": {"preset": "dgx-h100", "nodes": 4},
        "model": {"preset": "llama3-70b"},
        "parallelism": {"tp": 8, "pp": 4, "dp": 1, "sequence_parallel": True,
                        "microbatch": 1, "global_batch": 32},
        "training": {"precision": "bf16", "recompute": "selective",
                     "target": {"tokens": 1.0e10}},
        "cost": {"usd_per_gpu_hour": 3.0},
    }
    assert orrery.run(scenario) == by_path
    assert orrery.check(scenario) == orrery.check(QUICKSTART)


def test_sweep_is_what_sweep_json_writes(tmp_path):
    out = tmp_path / "sweep.json"
    cli("sweep", "--threads", "2", "--json", str(out), SMALL_SWEEP)
    expected = json.loads(out.read_text())
    assert orrery.sweep(SMALL_SWEEP, threads=1) == expected
    assert orrery.sweep(SMALL_SWEEP) == expected  # every core: same result
    assert [c["tp"] for c in expected["candidates"]][:1]  # rows a DataFrame can take


def test_validate_is_what_validate_format_json_prints():
    expected = json.loads(cli("validate", "--format", "json", "scenarios/validation"))
    assert orrery.validate("scenarios/validation") == expected
    files = sorted(str(p) for p in pathlib.Path("scenarios/validation").rglob("*.yaml"))
    assert orrery.validate(files) == expected


def error_rows():
    """docs/errors.md rows that name one scenario and no flag: (command, file, message)."""
    doc = (SOURCE / "docs" / "errors.md").read_text()
    rows = re.findall(r"<!-- error: orrery (check|run|sweep) (\S+\.yaml) -->\n```text\n(.*?)```",
                      doc, re.S)
    assert len(rows) >= 40  # the catalogue's scenario rows; a parsing slip shows here
    return rows


@pytest.mark.parametrize("command,path,message", error_rows())
def test_every_documented_bad_scenario_raises_the_commands_message(command, path, message):
    with pytest.raises(orrery.Error) as raised:
        getattr(orrery, command)(path)
    e = raised.value
    assert str(e) + "\n" == message
    assert (e.kind, e.exit_code) == ("input", 2)
    assert e.file is not None and e.why and e.why in str(e)


def test_an_error_carries_file_line_key_and_value():
    text = "cluster: {preset: dgx-h100, nodes: 1}\nmodel: {preset: llama3-8b}\nparallelism: {tp: three}\n"
    with pytest.raises(orrery.Error) as raised:
        orrery.check(text)
    e = raised.value
    assert (e.file, e.line, e.key, e.value) == ("<string>", 3, "parallelism.tp", "three")
    assert str(e).startswith("error: <string>:3: key 'parallelism.tp' = 'three'")
    with pytest.raises(orrery.Error) as raised:
        orrery.run({"cluster": {"preset": "dgx-h100", "nodes": 1}, "modle": {}})
    assert raised.value.file == "<dict>" and "modle" in str(raised.value)


def test_a_missing_file_is_an_input_error():
    with pytest.raises(orrery.Error) as raised:
        orrery.run("no/such/scenario.yaml")
    assert raised.value.kind == "input" and raised.value.file == "no/such/scenario.yaml"


def test_arguments_of_the_wrong_type_are_type_errors():
    with pytest.raises(TypeError):
        orrery.run(42)
    with pytest.raises(ValueError):
        orrery.sweep(SMALL_SWEEP, threads=0)


def test_the_gil_is_free_while_a_scenario_is_simulated():
    # Another Python thread keeps running while validate() simulates 30 cases: the
    # longest pause between its iterations stays far below the call's duration (with
    # the GIL held it would be the whole call).
    orrery.validate("scenarios/validation")  # warm: presets parsed
    span = {}

    def work():
        span["start"] = time.perf_counter()
        for _ in range(5):
            orrery.validate("scenarios/validation")
        span["end"] = time.perf_counter()

    t = threading.Thread(target=work)
    ticks = []
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
    t.join()
    ticks = [x for x in ticks if span["start"] <= x <= span["end"]]
    duration = span["end"] - span["start"]
    assert len(ticks) > 1000
    longest = max(b - a for a, b in zip(ticks, ticks[1:]))
    assert longest < duration / 3, (longest, duration)


def test_concurrent_calls_give_the_serial_results():
    serial = orrery.run(QUICKSTART)
    results = [None] * 4

    def work(i):
        results[i] = orrery.run(QUICKSTART)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [serial] * 4


def test_the_docs_notebook_session_runs_block_by_block(capsys):
    doc = (SOURCE / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) >= 4
    namespace = {}  # one session: each block continues the one before it
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/python.md, block {i + 1}", "exec"), namespace)
        assert capsys.readouterr().out, f"block {i + 1} printed nothing"
