"""Tests for registry.normalize: the pure helpers that denormalise raw entries."""

from __future__ import annotations

import re

import pytest

from registry.normalize import (
    DEFAULT_BACKEND_PORTS,
    DEFAULT_TEST_PATTERNS,
    SYNONYM_GROUPS,
    aliases,
    canonical_flags,
    clear_capability,
    compile_patterns,
    is_testing,
    model_dir,
    normalize_capabilities,
    resolve_endpoint,
    roles,
    served_id,
    set_capability,
    to_bool,
)

ORIGINAL_ORDER = [
    "text", "language", "chat",
    "vision", "visual", "multimodal", "mm", "image", "vl",
    "audio", "speech", "voice", "asr", "tts",
    "embedding", "embed", "text-embedding", "representation",
    "tools", "tool_use", "tool-use", "tool_call", "tool-call", "toolcalls",
    "tool_calls", "toolchoice", "tool_choice", "function_call", "function-call",
    "function_calls", "function_calling", "function-calling", "function_tools",
    "functioncalling", "toolcalling", "auto_tool_choice",
    "thinking", "reasoning", "reason", "think", "chain_of_thought", "cot",
    "reasoner", "o1", "o3", "r1", "deepseek",
]  # fmt: skip


# ---------------------------------------------------------------- capabilities


def test_synonym_groups_match_the_original():
    assert list(SYNONYM_GROUPS) == [
        "text", "vision", "audio", "embedding", "tools", "thinking", "reasoning",
    ]  # fmt: skip
    assert SYNONYM_GROUPS["thinking"] is SYNONYM_GROUPS["reasoning"]
    assert SYNONYM_GROUPS["vision"] == (
        "vision",
        "visual",
        "multimodal",
        "mm",
        "image",
        "vl",
    )
    assert len(SYNONYM_GROUPS["tools"]) == 18


def test_empty_map_gives_47_false_keys_in_original_order():
    caps = normalize_capabilities({})
    assert list(caps) == ORIGINAL_ORDER
    assert len(caps) == 47
    assert not any(caps.values())  # text is false too: the default never fires


@pytest.mark.parametrize("raw", [None, [], "vision", 3, ["text"]])
def test_non_dict_capabilities_are_all_false(raw):
    caps = normalize_capabilities(raw)
    assert len(caps) == 47
    assert caps["text"] is False


def test_synonyms_are_or_ed_and_promoted():
    caps = normalize_capabilities({"Function_Calling": 1, " Think ": "yes", "VL": True})
    assert caps["tools"] and caps["tool_calls"] and caps["function_calling"]
    assert caps["thinking"] and caps["reasoning"] and caps["deepseek"]
    assert caps["vision"] and caps["image"]
    assert caps["text"] is False and caps["audio"] is False
    # Existing keys keep their position (lower-cased), like the original's dict copy.
    assert list(caps)[:3] == ["function_calling", "think", "vl"]
    assert len(caps) == 47


def test_extra_keys_are_kept_first():
    caps = normalize_capabilities({"ocr": 1, "text": True})
    assert list(caps)[:2] == ["ocr", "text"]
    assert caps["ocr"] is True
    assert len(caps) == 48


def test_normalization_is_a_fixed_point():
    once = normalize_capabilities({"vision": True, "text": True, "cot": 0})
    assert normalize_capabilities(once) == once
    assert list(normalize_capabilities(once)) == list(once)


def test_canonical_flags():
    flags = canonical_flags({"text": True, "mm": True, "tool_use": True, "r1": False})
    assert flags == {
        "text": True,
        "vision": True,
        "embedding": False,
        "audio": False,
        "thinking": False,
        "tools": True,
    }
    assert canonical_flags(None)["text"] is False


def test_clearing_a_capability_clears_its_whole_group():
    caps = normalize_capabilities({"vision": True, "visual": True, "text": True})
    naive = dict(caps, vision=False)
    assert normalize_capabilities(naive)["vision"] is True  # the editing gotcha
    cleared = clear_capability(caps, "vision")
    assert normalize_capabilities(cleared)["vision"] is False
    assert not any(cleared[alias] for alias in SYNONYM_GROUPS["vision"])
    assert cleared["text"] is True


def test_set_capability_on_and_off_and_via_synonym():
    caps = set_capability({}, "reasoning", True)
    assert caps["thinking"] and caps["reasoning"]
    caps = set_capability(caps, "think", "false")  # a synonym names its group
    assert not caps["thinking"] and not caps["reasoning"]
    with pytest.raises(ValueError, match="Unknown capability"):
        set_capability({}, "telepathy", True)


# ---------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("None", ""),
        ("none", ""),
        (" NONE ", ""),
        ("", ""),
        ("  qwen3:8b ", "qwen3:8b"),
        (42, "42"),
    ],
)
def test_served_id(value, expected):
    assert served_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", False),
        ("False", False),
        (" 0 ", False),
        ("no", False),
        ("OFF", False),
        ("", False),
        ("true", True),
        ("1", True),
        ("Yes", True),
        ("on", True),
        ("maybe", True),
        (True, True),
        (False, False),
        (0, False),
        (2, True),
        (None, False),
        ([], False),
    ],
)
def test_to_bool(value, expected):
    assert to_bool(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("Qwen/Qwen2.5-VL-7B-Instruct-AWQ", ["Qwen/Qwen2.5-VL-7B-Instruct-AWQ"]),
        ("  ", []),
        (["a", " b ", "", None, 3], ["a", "b", "3"]),
        (("x",), ["x"]),
        ({"a": 1}, []),
        (7, ["7"]),
    ],
)
def test_aliases_and_roles_never_split_strings(value, expected):
    assert aliases(value) == expected
    assert roles(value) == expected


def test_model_dir_prefers_model_path():
    assert (
        model_dir({"backend_config": {"model_path": " /m "}, "download_path": "/d"})
        == "/m"
    )
    assert (
        model_dir({"backend_config": {"model_path": ""}, "download_path": "/d"}) == "/d"
    )
    assert model_dir({"backend_config": None, "download_path": "ollama:/qwen3:8b"}) == (
        "ollama:/qwen3:8b"
    )
    assert model_dir({}) == ""
    assert model_dir({"download_path": None}) == ""


# ---------------------------------------------------------------- endpoints


def test_default_ports():
    assert DEFAULT_BACKEND_PORTS == {
        "vllm": 24001,
        "ollama": 11434,
        "lmdeploy": 24001,
        "triton": 9000,
    }


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"backend": "vllm", "backend_config": {"port": 0}},
            "http://localhost:24001/v1",
        ),
        (
            {"backend": "vllm", "backend_config": {"port": 8123}},
            "http://localhost:8123/v1",
        ),
        (
            {"backend": "vllm", "backend_config": {"port": "8000"}},
            "http://localhost:8000/v1",
        ),
        (
            {"backend": "vllm", "backend_config": {"port": "abc"}},
            "http://localhost:24001/v1",
        ),
        (
            {"backend": "ollama", "backend_config": {"host": "imageworks-ollama"}},
            "http://imageworks-ollama:11434/v1",
        ),
        (
            {
                "backend": "ollama",
                "backend_config": {"host": "http://imageworks-ollama:8126/"},
            },
            "http://imageworks-ollama:8126",
        ),
        (
            {
                "backend": "vllm",
                "backend_config": {"port": 0, "base_url": "https://example.local/v1/"},
            },
            "https://example.local/v1",
        ),
        ({"backend": "triton"}, "http://localhost:9000/v1"),
        ({"backend": "remote", "backend_config": None}, "http://localhost:8000/v1"),
        (
            {"backend": "lmdeploy", "backend_config": {"port": True}},
            "http://localhost:24001/v1",
        ),
    ],
)
def test_resolve_endpoint(entry, expected):
    assert resolve_endpoint(entry) == expected


# ---------------------------------------------------------------- testing entries


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("r", True),
        ("r-anything", True),
        ("reasoner", False),
        ("demo-model", True),
        ("Demo-Model", False),
        ("mini-testing", True),
        ("my-testzzz-x", True),
        ("model-awq-unassigned-awq-w4g128", True),
        ("synthetic-test-ollama-gguf", True),
        ("synthetic-testing", False),
        ("  testmodel-ollama-gguf-q4_k", True),
        ("qwen3-vl-8b-instruct_(FP8)", False),
        ("", False),
    ],
)
def test_testing_names(name, expected):
    assert is_testing(name, {}) is expected


def test_testing_metadata_flag_must_be_the_json_true():
    assert is_testing("qwen3", {"testing": True})
    assert not is_testing("qwen3", {"testing": "true"})
    assert not is_testing("qwen3", {"testing": 1})
    assert not is_testing("qwen3", None)


def test_extra_patterns():
    assert is_testing("scratch-1", None, extra_patterns=["^scratch"])
    assert is_testing("scratch-1", None, extra_patterns=[re.compile("^scr")])
    assert not is_testing("my-scratch", None, extra_patterns=["^scratch"])
    assert len(DEFAULT_TEST_PATTERNS) == 10


def test_compile_patterns_accepts_a_comma_separated_string():
    patterns = compile_patterns(" ^a , ,^b$ ")
    assert [p.pattern for p in patterns] == ["^a", "^b$"]


def test_compile_patterns_names_the_bad_pattern():
    with pytest.raises(ValueError, match=r"Invalid test model pattern '\^\(oops'"):
        compile_patterns(["^ok", "^(oops"])
