"""The README's walkthroughs run as written.

Every fenced block whose info string is ``bash walkthrough`` is run, in README order, as
one bash script (``set -euo pipefail``) in a fresh temporary folder, with ``REPO`` set
to this checkout. The first block starts ``dropprice serve`` in the background as the
README says; the last one stops it. A block marked ``bash walkthrough-skip: <reason>``
is not run, and must say why. Whatever happens, the script's process group is ended,
so no ``dropprice serve`` or ``redis-server`` outlives the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(
    r"^```bash (walkthrough(?:-skip)?)(?::[ \t]*([^\n]*))?\n(.*?)^```[ \t]*$", re.M | re.S
)


class Block(NamedTuple):
    line: int
    run: bool
    reason: str
    code: str


def walkthrough_blocks(text: str) -> list[Block]:
    """The README's walkthrough blocks, in order."""
    return [
        Block(
            text.count("\n", 0, m.start()) + 1,
            m.group(1) == "walkthrough",
            (m.group(2) or "").strip(),
            m.group(3),
        )
        for m in FENCE.finditer(text)
    ]


def test_every_skipped_block_says_why() -> None:
    blocks = walkthrough_blocks(README.read_text())
    assert sum(b.run for b in blocks) >= 8, "the walkthroughs lost their blocks"
    for b in blocks:
        if not b.run:
            assert len(b.reason) > 10, f"README.md:{b.line}: a skipped block needs its reason"


def test_the_walkthroughs_cover_every_user() -> None:
    text = README.read_text()
    section = text[text.index("## Walkthroughs") :]
    for user in ("POS integrator", "Operator", "Load tester", "Analyst"):
        assert f"### {user}" in section, user
    code = "\n".join(b.code for b in walkthrough_blocks(text) if b.run)
    for command in ("dropprice serve", "dropprice explain", "dropprice preview",
                    "dropprice approvals", "dropprice audit", "config diff configs/ --impact",
                    "config history", "dropprice signals", "/v1/prices/", "/v1/events"):  # fmt: skip
        assert command in code, command


@pytest.mark.timeout(420)
def test_readme_walkthroughs_run_as_written(tmp_path: Path) -> None:
    blocks = [b for b in walkthrough_blocks(README.read_text()) if b.run]
    script = ["set -euo pipefail"]
    for b in blocks:
        script.append(f"echo '=== README.md:{b.line}' >&2")
        script.append(b.code)
    (tmp_path / "walkthrough.sh").write_text("\n".join(script) + "\n")
    work = tmp_path / "shop"
    work.mkdir()
    env = {
        **os.environ,
        "REPO": str(ROOT),
        # The checkout's packages, also where an editable install points elsewhere.
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
    }
    env.pop("DROPPRICE_REDIS_URL", None)
    proc = subprocess.Popen(
        ["bash", str(tmp_path / "walkthrough.sh")],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=400)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    log = (work / "serve.log").read_text() if (work / "serve.log").exists() else ""
    assert proc.returncode == 0, f"{out[-6000:]}\n--- serve.log ---\n{log[-3000:]}"
    # What the walkthrough promises a reader, visible in its own output.
    assert '"status":"accepted"' in out
    assert "history sales accepted" in out
    assert "bound by:" in out and "expected revenue" in out
    assert "impact on" in out and "note: signed copy never under 29.99" in out
    assert (work / "preview.png").stat().st_size > 0
