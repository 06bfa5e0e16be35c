#!/usr/bin/env python3
"""Puts target/bench/latest.md (the table and the machine line) between the
<!-- bench:table --> markers of README.md, in both language sections."""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
table = (root / "target/bench/latest.md").read_text().strip()
cmd = "benches/run.sh"
block = f"<!-- bench:table -->\n{table}\n\n`{cmd}`\n<!-- /bench:table -->"
readme = root / "README.md"
text = re.sub(r"<!-- bench:table -->.*?<!-- /bench:table -->", lambda _: block,
              readme.read_text(), flags=re.S)
readme.write_text(text)
