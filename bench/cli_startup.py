"""Wall time of a CLI command from process start to exit, against the naive way (the whole
app imported first, as the command line did before it imported per command).

    python bench/cli_startup.py [FILE.eml]

Median of 5 runs each, every run a fresh interpreter (subprocess)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIL = ROOT / "tests/data/leads_handwritten/en_std_reply_gmail.eml"
RUNS = 5
# The naive way: import everything the API needs, then run the same command.
NAIVE = "import sys, widget_api.main; from widget_api.cli import main; sys.exit(main(sys.argv[1:]))"


def wall(command: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    mail = sys.argv[1] if len(sys.argv) > 1 else str(MAIL)
    print(f"{'command':<28} {'lazy (s)':>9} {'naive (s)':>10} {'ratio':>6}")
    for label, args in (("mailwidget --help", ["--help"]), ("mailwidget inspect <mail>", ["inspect", mail])):
        lazy = wall([sys.executable, "-m", "widget_api.cli", *args])
        naive = wall([sys.executable, "-c", NAIVE, *args])
        print(f"{label:<28} {lazy:>9.3f} {naive:>10.3f} {naive / lazy:>5.1f}x")


if __name__ == "__main__":
    main()
