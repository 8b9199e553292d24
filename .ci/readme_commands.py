"""Print the shell commands of the README's "Two commands" section, one per line, in order.

CI runs exactly these, so the README cannot promise a command that CI does not prove.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SECTION = "## Two commands"


def commands(readme: str) -> list[str]:
    """Every line of every ```bash block between the section heading and the next ``## `` heading."""
    start = readme.index(SECTION) + len(SECTION)
    end = readme.find("\n## ", start)
    section = readme[start : end if end != -1 else len(readme)]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


if __name__ == "__main__":
    print("\n".join(commands(Path(sys.argv[1]).read_text(encoding="utf-8"))))
