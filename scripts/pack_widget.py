"""Packs the Thunderbird extension (.xpi) from the same files the backend serves at /widget/:
manifest.json and widget_api/static/widget/. Usage: python scripts/pack_widget.py [OUT_DIR]"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET = ROOT / "widget_api" / "static" / "widget"


def pack(out_dir: Path) -> Path:
    manifest = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"mailwidget-{manifest['version']}.xpi"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as xpi:
        xpi.write(ROOT / "manifest.json", "manifest.json")
        for path in sorted(WIDGET.iterdir()):
            if path.is_file():
                xpi.write(path, f"widget_api/static/widget/{path.name}")
    return target


if __name__ == "__main__":
    print(pack(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"))
