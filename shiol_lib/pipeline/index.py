"""``runs/index.html``: a static page listing every archived run, newest first.

It links each step's HTML and notebook with relative links only, so it opens from disk and from any copy.
"""

from __future__ import annotations

import html
import os
from datetime import UTC, datetime
from pathlib import Path

from shiol_lib.pipeline.archive import iter_manifests, write_atomic
from shiol_lib.pipeline.manifest import Manifest

INDEX = "index.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.status-success { color: #1a7f37; font-weight: 600; }
.status-failed, .status-timeout, .status-crashed { color: #cf222e; font-weight: 600; }
.status-running, .status-waiting { color: #9a6700; font-weight: 600; }
.step { white-space: nowrap; }
code { font-size: .85em; }
"""


def write_index(runs_dir: Path) -> Path:
    """Regenerate ``runs/index.html`` from the manifests in the archive."""
    runs_dir = Path(runs_dir)
    rows = [_row(runs_dir, directory, m) for directory, m in iter_manifests(runs_dir)]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SHIOL+ run archive</title>
<style>{_STYLE}</style></head>
<body>
<h1>SHIOL+ run archive</h1>
<p>{len(rows)} run(s), newest first. Generated {generated}. Ledger: <a href="ledger.jsonl">ledger.jsonl</a>
(verify with <code>shiol runs verify</code>).</p>
<table id="runs">
<thead><tr><th>started</th><th>run</th><th>job</th><th>trigger</th><th>status</th><th>target drawing</th>
<th>duration</th><th>steps</th></tr></thead>
<tbody>
{''.join(rows)}</tbody></table>
</body></html>
"""
    path = runs_dir / INDEX
    write_atomic(path, page.encode("utf-8"))
    return path


def _row(runs_dir: Path, directory: Path, manifest: Manifest) -> str:
    rel = Path(os.path.relpath(directory, runs_dir)).as_posix()
    status = str(manifest.status)
    duration = manifest.duration_s
    steps = []
    for step in manifest.steps:
        links = []
        for name, label in ((step.html, "html"), (step.output, "ipynb")):
            if name and (directory / name).exists():
                links.append(f'<a href="{html.escape(rel + "/" + name)}">{label}</a>')
        step_status = html.escape(str(step.status))
        steps.append(
            f'<div class="step">{html.escape(step.name)}: '
            f'<span class="status-{step_status}">{step_status}</span> {" ".join(links)}</div>'
        )
    cells = [
        html.escape(manifest.started_at.isoformat()[:19].replace("T", " ")),
        f'<a href="{html.escape(rel)}/manifest.json"><code>{html.escape(manifest.run_id)}</code></a>',
        html.escape(manifest.job),
        html.escape(manifest.trigger),
        f'<span class="status-{html.escape(status)}">{html.escape(status)}</span>',
        html.escape(manifest.target_draw_date.isoformat() if manifest.target_draw_date else ""),
        f"{duration:.1f} s" if isinstance(duration, (int, float)) else "",
        "".join(steps),
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>\n"
