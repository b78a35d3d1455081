"""The one "settings differ" check of resumable jobs (``openmm_ani.resume``)."""

import pytest

from openmm_ani.resume import NOT_SET, WIDTH, raise_if_different, settings_differences


def test_equal_settings_have_no_differences():
    settings = {"seed": 1, "model": "ani1ccx", "windows": [0.0, 1.0]}
    assert settings_differences(settings, dict(settings)) == []
    raise_if_different([], "anything", "anything")  # nothing to raise


def test_each_difference_is_one_sorted_line():
    found = settings_differences({"seed": 2024, "model": "ani1ccx", "same": 1, "index": None},
                                 {"seed": 7, "model": "ani1x", "same": 1, "index": 2})
    assert found == ["index: stored null, now 2", "model: stored ani1ccx, now ani1x", "seed: stored 2024, now 7"]


def test_missing_keys_and_common_keys_only():
    stored, current = {"seed": 1, "old": True}, {"seed": 2, "new": "x"}
    assert settings_differences(stored, current) == [f"new: stored {NOT_SET}, now x", f"old: stored true, now {NOT_SET}",
                                                     "seed: stored 1, now 2"]
    assert settings_differences(stored, current, common_keys_only=True) == ["seed: stored 1, now 2"]


def test_template_prefix_quoting_ignore_and_custom():
    found = settings_differences({"model": "ani1ccx", "seed": 2024, "steps": 5, "system": "aa"},
                                 {"model": "ani1x", "seed": 7, "steps": 9, "system": "bb"},
                                 prefix="complex ", template="{key} {old} -> {new}", quote_strings=True, ignore={"steps"},
                                 custom={"system": lambda old, new: "system changed"})
    assert found == ['complex model "ani1ccx" -> "ani1x"', "complex seed 2024 -> 7", "complex system changed"]


def test_long_values_are_abbreviated_and_long_structures_named():
    long = "sha256:" + "a" * 64
    (line,) = settings_differences({"input": long}, {"input": "sha256:" + "b" * 64})
    assert line.startswith("input: stored sha256:a") and ", now sha256:b" in line and line.count("...") == 2
    assert len(line) <= len("input: stored , now ") + 2 * WIDTH
    assert settings_differences({"config": {"layers": list(range(30))}}, {"config": {"layers": []}}) == ["config differs"]
    assert settings_differences({"freeze": [0, 2]}, {"freeze": [0, 1]}) == ["freeze: stored [0, 2], now [0, 1]"]


def test_the_error_is_one_line_naming_holder_differences_and_remedy():
    with pytest.raises(ValueError) as raised:
        raise_if_different(["seed: stored 1, now 2", "model: stored a, now b"], "md.chk belongs to a run with other settings",
                           "start afresh with --overwrite")
    assert str(raised.value) == ("md.chk belongs to a run with other settings (seed: stored 1, now 2; model: stored a, now b); "
                                 "start afresh with --overwrite")
