#!/usr/bin/env python3
"""Re-runs every `<!-- output: orrery ARGS -->` block in README.md and docs/*.md with the
built binary and writes what it prints into the block; likewise every
`<!-- error: orrery ARGS -->` block (docs/errors.md) with what it prints on stderr, which
must come with exit code 2. tests/cli/docs_test.cpp fails
when a block and the binary disagree; run this after a change that moves the numbers,
then read the diff before committing it.

Usage: tools/refresh_doc_outputs.py [BUILD_DIR]   (default: build)
"""
import glob
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.path.join(root, sys.argv[1] if len(sys.argv) > 1 else "build", "cli", "orrery")
block = re.compile(r"<!-- output: orrery ([^>]*) -->\n```[a-z]*\n[\s\S]*?```")
error_block = re.compile(r"<!-- error: orrery ([^>]*) -->\n```[a-z]*\n[\s\S]*?```")

for path in [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md"))):
    text = open(path).read()

    def run(match):
        args = match.group(1)
        out = subprocess.run([binary] + args.split(), cwd=root, capture_output=True, text=True,
                             check=True).stdout
        return f"<!-- output: orrery {args} -->\n```text\n{out}```"

    def run_error(match):
        args = match.group(1)
        r = subprocess.run([binary] + args.split(), cwd=root, capture_output=True, text=True)
        if r.returncode != 2:
            sys.exit(f"orrery {args}: exit code {r.returncode}, not 2")
        return f"<!-- error: orrery {args} -->\n```text\n{r.stderr}```"

    new = error_block.sub(run_error, block.sub(run, text))
    if new != text:
        open(path, "w").write(new)
        print("updated", os.path.relpath(path, root))
