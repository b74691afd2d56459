"""`orrery schema` against the reader: every shipped scenario validates, and the
documented bad input of the kinds a schema can express (docs/errors.md: unknown keys,
wrong types, names not in a key's list) is rejected.

The schema uses a small part of JSON Schema (type, enum, properties,
additionalProperties, items, anyOf); `valid` below checks exactly that part, so no
validator package is needed. Files are read as the YAML language server reads them,
YAML 1.2's core schema (PyYAML reads YAML 1.1: `yes` would be true there).
"""
import json
import os
import pathlib
import re
import subprocess

import pytest
import yaml

import orrery

SOURCE = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("ORRERY_BINARY", str(SOURCE / "build" / "cli" / "orrery"))


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core schema booleans and floats."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def read_yaml(path):
    return yaml.load(pathlib.Path(path).read_text(), Loader=Yaml12Loader)


TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def errors(value, schema, where="scenario"):
    """Why `value` fails `schema` (the part of JSON Schema orrery's uses); [] if it passes."""
    out = []
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[k](value) for k in kinds):
            return [f"{where}: {value!r} is not {' or '.join(kinds)}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    if "anyOf" in schema:
        tries = [errors(value, option, where) for option in schema["anyOf"]]
        if all(tries):
            return [e for t in tries for e in t]
    if isinstance(value, dict) and "properties" in schema:
        for key, v in value.items():
            if key in schema["properties"]:
                out += errors(v, schema["properties"][key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: unknown key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += errors(v, schema["items"], f"{where}[{i}]")
    return out


@pytest.fixture(scope="module")
def schema():
    return orrery.schema()


def test_the_module_gives_what_orrery_schema_prints(schema):
    text = subprocess.run([BINARY, "schema"], check=True, capture_output=True, text=True).stdout
    assert json.loads(text) == schema
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_every_key_the_reader_accepts_is_in_the_schema_with_a_description(schema):
    # Spot checks of the structure: nested sections, a list of mappings, presets, enums.
    props = schema["properties"]
    tp = props["parallelism"]["properties"]["tp"]
    assert tp["type"] == "number" and tp["description"].startswith("count")
    assert props["parallelism"]["additionalProperties"] is False
    assert props["faults"]["type"] == "array"
    assert "kind" in props["faults"]["items"]["properties"]
    model = props["model"]["anyOf"]
    assert "llama3-8b" in model[0]["enum"] and model[1]["type"] == "object"
    precision = props["training"]["properties"]["precision"]
    assert precision["enum"] == ["fp32", "tf32", "fp16", "bf16", "fp8", "fp4"]


SHIPPED = sorted(str(p.relative_to(SOURCE)) for p in (SOURCE / "scenarios").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED)
def test_every_shipped_scenario_validates(schema, path):
    assert errors(read_yaml(SOURCE / path), schema) == []


def documented_bad_scenarios():
    """(heading, file) of docs/errors.md's rows that check, run or sweep one scenario."""
    doc = (SOURCE / "docs" / "errors.md").read_text()
    rows = {}
    for section in doc.split("\n### ")[1:]:
        heading = section.split("\n", 1)[0]
        for path in re.findall(r"<!-- error: orrery (?:check|run|sweep) (\S+\.yaml) -->", section):
            rows.setdefault(heading, []).append(path)
    return rows


# The rows a schema can express: the keys, the types and the names of a key's list.
# The others (ranges, units, keys that depend on each other, splits, files) are for
# `orrery check`.
REJECTED = [
    "Unknown key", "Wrong type: text for a number", "Wrong type: list for a value",
    "Wrong type: value for a mapping", "Wrong type: not true or false", "Missing unit",
    "Unknown choice", "Unknown preset", "Unknown fabric", "Not a mapping",
]


@pytest.mark.parametrize("heading", REJECTED)
def test_the_documented_bad_input_a_schema_can_express_is_rejected(schema, heading):
    rows = documented_bad_scenarios()
    assert heading in rows, f"docs/errors.md has no row '{heading}'"
    for path in rows[heading]:
        assert errors(read_yaml(SOURCE / path), schema), f"{path} passes the schema"
