"""The publishing recipes in docs/pages/ parse, publish the folder `tracegen report` writes, and
their report command (run here as written) builds the site, then rebuilds only what changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
GITLAB = ROOT / "docs/pages/gitlab-ci.yml"
GITHUB = ROOT / "docs/pages/github-pages.yml"


def _report_line(lines: list[str]) -> str:
    [line] = [c for c in lines if c.startswith("tracegen report ")]
    return line


def _out_of(line: str) -> str:
    words = line.split()
    return words[words.index("--out") + 1]


def test_gitlab_job_publishes_the_report_folder():
    job = yaml.safe_load(GITLAB.read_text())["pages"]  # GitLab deploys the job named "pages"
    line = _report_line(job["script"])
    assert _out_of(line) == "public" and job["artifacts"]["paths"] == ["public"]
    assert "public/" in job["cache"]["paths"]  # kept between pipelines: rebuilds are incremental
    assert "test $? -eq 3" in line  # skipped runs still publish


def test_github_workflow_uploads_and_deploys_the_report_folder():
    wf = yaml.safe_load(GITHUB.read_text())
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    steps = wf["jobs"]["build"]["steps"]
    line = _report_line([s.get("run", "") for s in steps])
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert upload["with"]["path"] == _out_of(line) == cache["with"]["path"]
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in wf["jobs"]["deploy"]["steps"])
    assert wf["jobs"]["deploy"]["needs"] == "build"


@pytest.mark.parametrize("recipe", ["gitlab", "github"])
def test_the_recipes_report_command_builds_and_rebuilds(recipe, tmp_path, idle_run, batch_run):
    if recipe == "gitlab":
        line = _report_line(yaml.safe_load(GITLAB.read_text())["pages"]["script"])
    else:
        line = _report_line([s.get("run", "") for s in yaml.safe_load(GITHUB.read_text())["jobs"]["build"]["steps"]])
    (tmp_path / "runs").mkdir()
    shutil.copytree(batch_run, tmp_path / "runs" / "batch-run")
    bin_dir = tmp_path / "bin"  # `tracegen` on PATH runs this checkout
    bin_dir.mkdir()
    (bin_dir / "tracegen").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tracegen "$@"\n')
    (bin_dir / "tracegen").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}

    def publish() -> str:
        proc = subprocess.run(["sh", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = tmp_path / _out_of(line)
    publish()
    assert (out / "runs/batch-run/index.html").is_file()
    shutil.copytree(idle_run, tmp_path / "runs" / "idle-run")
    assert "1 unchanged" in publish()  # only the new run is rendered
    assert (out / "runs/idle-run/index.html").is_file()
    shutil.rmtree(tmp_path / "runs" / "batch-run")
    publish()
    assert not (out / "runs/batch-run").exists() and "batch-run" not in (out / "index.html").read_text()
