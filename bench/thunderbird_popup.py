"""Draft shown in Thunderbird's popup: from the button press on a displayed message to the
fields filled, in Debian's Thunderbird (Xvfb, Marionette) against the real backend and a
local Dovecot.

    .venv/bin/python bench/thunderbird_popup.py [--runs N]

Two messages (a Japanese mail, and the same text with a 5 MB attachment) through the
widget's normal path (the backend reads only the text parts over its pooled IMAP
connection), and beside it, in the same run, the naive way: the raw upload a user without a
connected mailbox gets (Thunderbird reads the whole message, the widget uploads it).
The time is the popup's own "draft-shown" mark (performance.timeOrigin + mark) minus the
moment chrome JavaScript pressed the button: the popup's page load is included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from crm.store.db import migrate  # noqa: E402
from scripts.pack_widget import pack  # noqa: E402
from tests.conftest import serve_app  # noqa: E402
from tests.factories import make_org, make_user  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.servers.thunderbird import BUTTON_ID, Thunderbird  # noqa: E402
from tests.test_thunderbird import japanese_mail  # noqa: E402
from widget_api.config import Settings  # noqa: E402
from widget_api.deps import Runtime  # noqa: E402
from widget_api.main import create_app  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def with_attachment(raw: bytes, size: int) -> bytes:
    import email
    import email.policy
    import os

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    msg.add_attachment(os.urandom(size), maintype="application", subtype="octet-stream", filename="big.bin")  # type: ignore[attr-defined]
    return msg.as_bytes()


def time_openings(tb: Thunderbird, runs: int) -> list[float]:
    times = []
    for _ in range(runs + 1):  # the first opening warms the caches and is not counted
        tb.close_popup()
        pressed = tb.js("const t = Date.now(); about3Pane().messageBrowser.contentDocument.getElementById(arguments[0]).click(); return t;", BUTTON_ID)
        tb.wait(lambda: tb.js("const b = popupBrowser(); return !!(b && b.browsingContext && b.browsingContext.currentWindowGlobal);"), what="the popup")
        shown = tb.wait_popup("(() => { const m = win.performance.getEntriesByName('draft-shown'); return m.length ? win.performance.timeOrigin + m[0].startTime : 0; })()", what="the draft")
        times.append(shown - pressed)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--inbox", type=int, default=0, help="older messages in the INBOX besides the measured ones (a large folder: the backend finds a Message-ID by SEARCH)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tb-"))
    url_db = f"sqlite:///{work / 'bench.db'}"
    migrate(url_db)
    runtime = Runtime.build(Settings(database_url=url_db, secret_keys=[Fernet.generate_key().decode()], data_dir=work, allow_private_hosts=True))
    with serve_app(create_app(runtime.settings, runtime)) as url:
        results = measure(runtime, url, args.runs, work, args.inbox)
    print(f"Thunderbird popup, button press → fields filled, {args.runs} openings each, {args.inbox} older messages in the INBOX (ms)")
    print(f"{'message':26} {'path':24} {'p50':>8} {'p90':>8} {'max':>8}")
    for name, paths in results.items():
        for path, times in paths.items():
            print(f"{name:26} {path:24} {statistics.median(times):8.1f} {percentile(times, 0.9):8.1f} {max(times):8.1f}")
        widget, naive = (statistics.median(v) for v in paths.values())
        print(f"{'':26} {'naive / widget':24} {naive / widget:7.1f}x")


def measure(runtime: Runtime, url: str, runs: int, work: Path, inbox: int = 0) -> dict[str, dict[str, list[float]]]:
    user = make_user(runtime, make_org(runtime, "Bench"), "receiver@example.com")
    small = japanese_mail("<bench-small@sample-shoji.co.jp>")
    big = with_attachment(japanese_mail("<bench-big@sample-shoji.co.jp>"), 5 * 2**20)
    with Dovecot() as dovecot:
        imap = dovecot.add_user("bench")
        with dovecot.imap(imap.name) as c:
            older = [japanese_mail(f"<older-{i}@sample-shoji.co.jp>") for i in range(inbox)]
            for i in range(0, len(older), 500):
                c.multiappend("INBOX", older[i : i + 500])
        for raw in (small, big):
            dovecot.append(imap.name, "INBOX", raw)
        mailbox = {"host": imap.host, "port": imap.port, "security": "plain", "username": imap.name, "password": imap.password}
        assert httpx.post(f"{url}/api/v1/mailboxes", json=mailbox, headers=user.headers, timeout=30).status_code == 201
        with Thunderbird(imap, pack(work / "xpi"), email="receiver@example.com") as tb:
            tb.show_message("INBOX", "<bench-small@sample-shoji.co.jp>")
            tb.open_popup()
            # Shown once the popup's start-up has run (its submit handler is attached only then:
            # a form submitted before would reload the page).
            tb.wait_popup("!doc.getElementById('settings').hidden", what="the settings form")
            # The token path of the settings form (scripts and benchmarks; users pair instead).
            tb.popup(f"doc.getElementById('backend').value = {url!r}; doc.getElementById('token').value = {user.token!r}; doc.getElementById('settings').requestSubmit(); return true;")
            tb.wait_popup("!doc.getElementById('lead').hidden", what="the first draft")
            results: dict[str, dict[str, list[float]]] = {}
            for name, mid in (("Japanese mail, 2 KB", "<bench-small@sample-shoji.co.jp>"), ("same + 5 MB attachment", "<bench-big@sample-shoji.co.jp>")):
                tb.close_popup()
                tb.show_message("INBOX", mid)
                results[name] = {"widget (IMAP, pooled)": time_openings(tb, runs)}
            boxes = httpx.get(f"{url}/api/v1/mailboxes", headers=user.headers, timeout=30).json()
            for box in boxes:
                httpx.delete(f"{url}/api/v1/mailboxes/{box['id']}", headers=user.headers, timeout=30)
            for name, mid in (("Japanese mail, 2 KB", "<bench-small@sample-shoji.co.jp>"), ("same + 5 MB attachment", "<bench-big@sample-shoji.co.jp>")):
                tb.close_popup()
                tb.show_message("INBOX", mid)
                results[name]["naive (raw upload)"] = time_openings(tb, runs)
    return results


if __name__ == "__main__":
    main()
