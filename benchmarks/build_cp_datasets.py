"""Rebuild the public, human-labelled change-point data sets used by bench_changepoints_real.py.

The series are not committed (their licences vary per series, and the RTT set is 15 MB); this
script reads them from clones of the source repositories at pinned commits and writes one
JSON file per set under ``benchmarks/data/real/`` (git-ignored):

* ``tcpd.json``: the Turing Change Point Dataset (van den Burg and Williams, "An Evaluation of
  Change Point Detection Algorithms", 2020), github.com/alan-turing-institute/TCPD at
  ``TCPD_COMMIT``: the univariate series shipped in the repository (the ones its Makefile must
  download are left out), each with the change points of every annotator (annotations.json).
  Licences per series (MIT, CC BY 4.0, CC BY-SA 3.0, CC0, GPLv2, OGL v3, ...) are copied from
  each series' README into the output.
* ``rtt.json``: RIPE Atlas round-trip times with manually labelled changes (Wenqin Shao et
  al., "Detecting network changes via RTT time series", 2017), github.com/WenqinSHAO/rtt at
  ``RTT_COMMIT``, folder dataset/real_trace_labelled: 50 traces of 1,600-12,000 pings, MIT
  licence. A row with cp = 1 starts a new segment. RTT -1 (a lost ping) is kept as it is.

    git clone https://github.com/alan-turing-institute/TCPD /tmp/TCPD
    git clone https://github.com/WenqinSHAO/rtt /tmp/rtt
    python benchmarks/build_cp_datasets.py --tcpd /tmp/TCPD --rtt /tmp/rtt

Either option may also name a bare git directory. The files are read with ``git show
COMMIT:path``, so the clones may be at any commit that contains the pinned one.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "data" / "real"
TCPD_COMMIT = "83b3039b5c67eaf21a720e3eac4ffdade3fb421c"
RTT_COMMIT = "d090227f1e6deb158ac0d5c06966318d5e163d83"


def _git(repo: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", f"--git-dir={_git_dir(repo)}", *args], check=True, capture_output=True,
                              text=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"git {' '.join(args)} failed in {repo}: {exc.stderr.strip()}; "
                         "clone the repository named in this script's docstring") from None


def _git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").exists() else repo


def _licence(readme: str) -> str:
    """The sentences of a README that mention a licence, on one line."""
    text = " ".join(readme.split())
    hits = re.findall(r"[^.]*licen[sc][^.]*(?:\.\d[^.]*)?\.", text, flags=re.I)
    return " ".join(h.strip() for h in hits)[:400]


def build_tcpd(repo: Path) -> dict:
    annotations = json.loads(_git(repo, "show", f"{TCPD_COMMIT}:annotations.json"))
    names = _git(repo, "ls-tree", "--name-only", f"{TCPD_COMMIT}:datasets").split()
    series = []
    for name in sorted(names):
        try:
            data = json.loads(_git(repo, "show", f"{TCPD_COMMIT}:datasets/{name}/{name}.json"))
        except SystemExit:
            continue  # not shipped in the repository (downloaded by its Makefile)
        if data["n_dim"] != 1 or name not in annotations:
            continue
        raw = data["series"][0]["raw"]
        readme = _git(repo, "show", f"{TCPD_COMMIT}:datasets/{name}/README.md")
        series.append({
            "name": name,
            "values": [None if v is None else float(v) for v in raw],
            "annotations": {str(k): [int(c) for c in v] for k, v in annotations[name].items()},
            "licence": _licence(readme),
        })
    return {"name": "tcpd", "source": "github.com/alan-turing-institute/TCPD", "commit": TCPD_COMMIT,
            "licence": "per series, see each series' licence field", "series": series}


def build_rtt(repo: Path) -> dict:
    folder = "dataset/real_trace_labelled"
    names = _git(repo, "ls-tree", "--name-only", f"{RTT_COMMIT}:{folder}").split()
    series = []
    for name in sorted(names):
        lines = _git(repo, "show", f"{RTT_COMMIT}:{folder}/{name}").splitlines()[1:]
        values, cps = [], []
        for i, line in enumerate(lines):
            _, rtt, cp = line.strip().split(";")
            values.append(float(rtt))
            if int(cp) == 1 and i > 0:
                cps.append(i)
        series.append({"name": name.removesuffix(".csv"), "values": values, "annotations": {"0": cps},
                       "licence": "MIT"})
    return {"name": "rtt", "source": "github.com/WenqinSHAO/rtt (dataset/real_trace_labelled)",
            "commit": RTT_COMMIT, "licence": "MIT (Copyright 2016-2017 Wenqin Shao)", "series": series}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tcpd", type=Path, help="clone (or git directory) of alan-turing-institute/TCPD")
    p.add_argument("--rtt", type=Path, help="clone (or git directory) of WenqinSHAO/rtt")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if not (args.tcpd or args.rtt):
        p.error("give --tcpd and/or --rtt (clones of the repositories named in this script's docstring)")
    args.out.mkdir(parents=True, exist_ok=True)
    for repo, build in ((args.tcpd, build_tcpd), (args.rtt, build_rtt)):
        if repo is None:
            continue
        data = build(repo)
        path = args.out / f"{data['name']}.json"
        path.write_text(json.dumps(data, separators=(",", ":")))
        cps = sum(len(a) for s in data["series"] for a in s["annotations"].values())
        print(f"{path}: {len(data['series'])} series, {cps} annotated change points", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
