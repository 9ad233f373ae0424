"""Every constrained setting refuses a value just outside its bounds or pattern, at start,
naming the environment variable: one case per field, generated from the settings' schema,
so a field added with a bound is covered without writing its test."""

from __future__ import annotations

import re

import pytest

from stockpipe.settings import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    ConfigError,
    Settings,
    load_settings,
)

BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "minLength")


def constrained_fields() -> list[tuple[str, dict]]:
    """(environment variable, its constraints) for every nested setting with one."""
    schema = Settings.model_json_schema()
    definitions = schema.get("$defs", {})
    found = []
    for section, prop in schema["properties"].items():
        refs = [prop.get("$ref")] + [a.get("$ref") for a in prop.get("allOf", [])]
        ref = next((r for r in refs if r), None)
        if ref is None:
            continue
        for name, field in definitions[ref.rsplit("/", 1)[-1]]["properties"].items():
            constraints = {k: v for k, v in field.items() if k in BOUNDS}
            for alternative in field.get("anyOf", []):  # Optional fields
                constraints |= {k: v for k, v in alternative.items() if k in BOUNDS}
            if constraints:
                variable = f"{ENV_PREFIX}{section}{ENV_NESTED_DELIMITER}{name}".upper()
                found.append((variable, constraints))
    return found


def outside(constraints: dict) -> list[str]:
    """Values just outside each of the constraints."""
    values = []
    if "minimum" in constraints:
        values.append(str(constraints["minimum"] - 1))
    if "maximum" in constraints:
        values.append(str(constraints["maximum"] + 1))
    if "exclusiveMinimum" in constraints:
        values.append(str(constraints["exclusiveMinimum"]))
    if "exclusiveMaximum" in constraints:
        values.append(str(constraints["exclusiveMaximum"]))
    if "pattern" in constraints:
        bad = "not a valid value!"
        assert not re.search(constraints["pattern"], bad)
        values.append(bad)
    return values


CASES = [
    pytest.param(variable, value, id=f"{variable.removeprefix(ENV_PREFIX)}={value}")
    for variable, constraints in constrained_fields()
    for value in outside(constraints)
]


def test_the_schema_has_the_constrained_settings() -> None:
    # A guard on the generator itself: a schema change that hid the bounds would leave
    # the test below with nothing to check.
    assert len(constrained_fields()) >= 50 and len(CASES) >= 60


@pytest.mark.parametrize(("variable", "value"), CASES)
def test_a_value_outside_a_settings_bounds_fails_at_start_naming_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert variable in str(refused.value)
