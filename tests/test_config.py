import pytest

from tracegen.run.config import CPU_DEFAULTS, GPU_DEFAULTS, build_config, load_toml, resolve
from tracegen.errors import ConfigError


def test_flags_override_file_values():
    config = build_config({"batch-sizes": [1, 2], "iterations": 50}, {"iterations": "7", "pacing": None})
    assert config.batch_sizes == (1, 2)
    assert config.iterations == 7


def test_lists_are_parsed_and_deduplicated():
    config = build_config(flags={"idle_ms": "0, 20,20,100", "pacing": "spin,sleep"})
    assert config.idle_ms == (0.0, 20.0, 100.0)
    assert config.pacing == ("spin", "sleep")


def test_resolve_fills_device_defaults_only_where_unset():
    config = resolve(build_config(flags={"iterations": "9"}), "host")
    assert config.iterations == 9
    assert config.model == CPU_DEFAULTS["model"]
    assert resolve(build_config(), "cuda").launch == GPU_DEFAULTS["launch"]


@pytest.mark.parametrize(
    "flags, words",
    [
        ({"batch_sizes": "0"}, "at least 1"),
        ({"batch_sizes": "-4"}, "at least 1"),
        ({"batch_sizes": "two"}, "whole numbers"),
        ({"scenarios": "latency"}, "unknown --scenario"),
        ({"pacing": "nap"}, "unknown --pacing"),
        ({"launch": "lazy"}, "unknown --launch"),
        ({"idle_ms": "-1"}, "between 0"),
        ({"iterations": "0"}, "at least 1"),
        ({"run_id": "../x"}, "plain directory name"),
        ({"backend": "tvm"}, "unknown --backend"),
    ],
)
def test_bad_options_name_the_problem(flags, words):
    with pytest.raises(ConfigError) as err:
        build_config(flags=flags)
    assert words in str(err.value)


def test_unknown_key_in_file_is_rejected():
    with pytest.raises(ConfigError, match="unknown option 'batchsize'"):
        build_config({"batchsize": 3})


def test_toml_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[run]\nmodel = "builtin:tiny"\nbatch-sizes = [1, 8]\nidle-ms = [0, 20]\n')
    config = build_config(load_toml(path))
    assert config.batch_sizes == (1, 8) and config.idle_ms == (0.0, 20.0)
    bad = tmp_path / "bad.toml"
    bad.write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")
