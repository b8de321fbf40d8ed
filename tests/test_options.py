"""Options defined once: the click flags, the config file, --help and the README all come from
the fields of RunConfig, and a file value is checked by the same code as a flag."""

from dataclasses import fields
from pathlib import Path

import click
import pytest

from tracegen.cli.run import run as run_command
from tracegen.errors import ConfigError
from tracegen.run.config import RunConfig, build_config, load_toml, specs
from tracegen.cli.readme import with_table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_option_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert with_table(readme) == readme, "run `python -m tracegen.cli.readme` to regenerate the README table"


def test_every_field_is_a_flag_with_its_default_in_help():
    params = {p.name: p for p in run_command.params}
    for f in fields(RunConfig):
        spec = f.metadata["option"]
        assert f.name in params, f.name
        assert spec.bind(f.name, f.default).default_label() in params[f.name].help


def test_help_lists_backend_choices_from_the_registry():
    from tracegen.backends.registry import BACKEND_CHOICES

    ctx = click.Context(run_command, info_name="run")
    text = run_command.get_help(ctx)
    assert "|".join(BACKEND_CHOICES) in text


@pytest.mark.parametrize("toml, flag", [
    ("iterations = 2.7", {"iterations": "2.7"}),
    ("iterations = true", {"iterations": "true"}),
    ("batch-sizes = [1, 0]", {"batch_sizes": "1,0"}),
    ("idle-ms = [-1]", {"idle_ms": "-1"}),
    ("pacing = ['nap']", {"pacing": "nap"}),
])
def test_file_and_flag_fail_alike(tmp_path, toml, flag):
    path = tmp_path / "run.toml"
    path.write_text(f"[run]\n{toml}\n")
    with pytest.raises(ConfigError) as from_file:
        build_config(load_toml(path))
    with pytest.raises(ConfigError) as from_flag:
        build_config(flags=flag)
    # The same problem, the same fix; only the echo of the value differs (2.7 from TOML, '2.7' typed).
    assert str(from_file.value).split(", got")[0] == str(from_flag.value).split(", got")[0]
    assert str(from_file.value).split("; ")[-1] == str(from_flag.value).split("; ")[-1]


def test_top_level_keys_beside_a_run_table_are_refused(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "builtin:small"\n[run]\niterations = 5\n')
    with pytest.raises(ConfigError, match="outside its \\[run\\] table: model"):
        load_toml(path)


def test_config_file_through_the_command_line(tmp_path):
    from tracegen.run.runner import run_benchmark  # noqa: F401 - the command imports it lazily

    path = tmp_path / "run.toml"
    path.write_text('[run]\nbatch-sizes = [1, 8]\nidle_ms = [0, 20]\niterations = 9\n')
    seen = {}
    ctx = run_command.make_context("run", ["--config", str(path), "--iterations", "4"])
    seen.update(ctx.params)
    assert seen["batch_sizes"] == (1, 8) and seen["idle_ms"] == (0.0, 20.0)
    assert seen["iterations"] == 4  # the flag wins over the file


def test_specs_follow_the_fields():
    assert [s.name for s in specs()] == [f.name for f in fields(RunConfig)]
