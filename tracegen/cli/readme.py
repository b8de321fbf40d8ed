"""The README's table of ``tracegen run`` options, generated from their definitions.

    python -m tracegen.cli.readme      # rewrite the table between the <!-- run-options --> markers
"""

from __future__ import annotations

from pathlib import Path

from tracegen.cli.run import COMMAND_ONLY_OPTIONS
from tracegen.run.config import specs
from tracegen.run.options import markdown_table

README_START, README_END = "<!-- run-options", "<!-- /run-options -->"


def readme_table() -> str:
    return markdown_table(specs(), COMMAND_ONLY_OPTIONS)


def with_table(readme: str) -> str:
    """``readme`` with the generated table between its markers."""
    start = readme.index("\n", readme.index(README_START)) + 1
    end = readme.index(README_END)
    return readme[:start] + readme_table() + "\n" + readme[end:]


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[2] / "README.md"
    path.write_text(with_table(path.read_text()))
    print(f"updated the option table in {path}")
