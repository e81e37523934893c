"""Route matching alone: CPU µs to find a request's route, walking `app.router.routes` as
the dispatch does, with widget_api.routing's check on and off, lookups alternating.

    .venv/bin/python bench/routing.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from starlette.routing import Match  # noqa: E402

from widget_api import routing  # noqa: E402
from widget_api.config import Settings  # noqa: E402
from widget_api.main import create_app  # noqa: E402

PATHS = ("/api/v1/messages/draft", "/api/v1/leads", "/api/v1/health", "/api/v1/nope")


def lookup(routes: list[Any], path: str) -> None:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "query_string": b"", "state": {}}
    for route in routes:
        if route.matches(scope)[0] == Match.FULL:
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    app = create_app(Settings(database_url=f"sqlite:///{tmp / 'routing.db'}", secret_keys=[Fernet.generate_key().decode()], data_dir=tmp))
    routes = app.router.routes
    taken: dict[tuple[str, bool], list[float]] = {(p, on): [] for p in PATHS for on in (True, False)}
    for _ in range(9):
        for path in PATHS:
            for on in (True, False):
                routing.ENABLED = on
                start = time.thread_time()
                for _ in range(args.runs // 9):
                    lookup(routes, path)
                taken[(path, on)].append((time.thread_time() - start) * 1e6 / (args.runs // 9))
    print(f"{'path':28} {'with the check µs':>18} {'FastAPI alone µs':>17}")
    for path in PATHS:
        print(f"{path:28} {statistics.median(taken[(path, True)]):18.1f} {statistics.median(taken[(path, False)]):17.1f}")


if __name__ == "__main__":
    main()
