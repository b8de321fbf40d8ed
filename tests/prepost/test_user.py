"""The user's own steps: loading, checking, and running them inside the timed steps."""

import textwrap

import numpy as np
import pytest

from tracegen.errors import ConfigError
from tracegen.prepost.user import check_spec, load_step, spec_of


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mypipe.py"
    path.write_text(textwrap.dedent("""
        CALLS = []
        def pre(frames, out):
            CALLS.append(len(frames))
            out[...] = 1
        def post(output):
            CALLS.append(output.shape)
        def wrong(a, b, c):
            pass
        NOT_A_FUNCTION = 3
    """))
    return path


def test_file_specs_load_and_run(user_file):
    pre = load_step("preprocess", f"{user_file}:pre")
    out = np.zeros((2, 3))
    pre([1, 2], out)
    assert (out == 1).all()
    assert load_step("postprocess", f"{user_file}:post") is not None


def test_module_specs_load(monkeypatch, user_file):
    monkeypatch.syspath_prepend(str(user_file.parent))
    assert load_step("postprocess", "mypipe:post").__name__ == "post"


@pytest.mark.parametrize("spec, words", [
    ("no_such_module_xyz:f", "cannot import"), ("{f}:missing", "has no missing"),
    ("{f}:NOT_A_FUNCTION", "not a function"), ("{f}:wrong", "cannot be called as preprocess(frames, out)"),
    ("/nope/file.py:f", "is not a file"),
])
def test_bad_user_steps_name_the_problem(user_file, spec, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_step("preprocess", spec.format(f=user_file))


def test_spec_forms():
    assert check_spec("preprocess", "device") == "device"
    assert check_spec("preprocess", " pkg.mod:fn ") == "pkg.mod:fn"
    for bad in ("gpu", "mod:", ":fn", "mod:not-an-identifier"):
        with pytest.raises(ConfigError, match="neither host, device nor MODULE:FUNCTION"):
            check_spec("preprocess", bad)

    def mine(output):
        pass
    assert check_spec("postprocess", mine) is mine
    assert spec_of(mine).endswith(":test_spec_forms.<locals>.mine")
