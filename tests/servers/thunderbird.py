"""Debian's Thunderbird, for real, under Xvfb + openbox, driven through Marionette.

A fresh profile per instance: one IMAP account (prefs in user.js, the password through the
login manager), the packed .xpi dropped into the profile's extensions/ folder as an admin
would deploy it, and optionally a managed-storage manifest (the per-user
~/.mozilla/managed-storage/<id>.json, HOME being the instance's directory) presetting the
backend URL. openbox is there because, without a window manager, a click inside the
message-display-action popup closes it.

The popup is a remote browser (the extension process): chrome JavaScript reaches into its
DOM with a frame script, and takes its screenshot with drawSnapshot. Nothing of this ships
in the .xpi.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.servers.dovecot import ImapUser
from tests.servers.net import die_with_parent, free_port, scratch_dir, wait_for_port

THUNDERBIRD = shutil.which("thunderbird") or "/usr/bin/thunderbird"
EXTENSION_ID = "crm-mail-widget@mailwidget.example"
BUTTON_ID = "crm-mail-widget_mailwidget_example-messageDisplayAction-toolbarbutton"

PREFS: dict[str, object] = {
    "xpinstall.signatures.required": False,
    "extensions.autoDisableScopes": 0,
    "extensions.startupScanScopes": 15,
    "mail.shell.checkDefaultClient": False,
    "mailnews.start_page.enabled": False,
    "mail.provider.suppress_dialog_on_startup": True,
    "mail.spotlight.firstRunDone": True,
    "mail.winsearch.firstRunDone": True,
    "mail.rights.override": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "mail.server.default.check_new_mail": False,
    "mail.server.default.login_at_startup": False,
    "mail.server.default.autosync_offline_stores": False,
    "mail.server.default.offline_download": False,
    "browser.dom.window.dump.enabled": True,
    "devtools.console.stdout.chrome": True,
    "devtools.console.stdout.content": True,
    "calendar.timezone.useSystemTimezone": True,
}

# Chrome JavaScript helpers, prepended to every script.
HELPERS = r"""
const {MailServices} = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const mailWindow = () => Services.wm.getMostRecentWindow("mail:3pane");
const about3Pane = () => mailWindow().gTabmail.currentAbout3Pane;
const server = () => MailServices.accounts.accounts.find(a => a.incomingServer.type == "imap").incomingServer;
const popupBrowser = () => [...mailWindow().document.querySelectorAll("browser")].find(b => b.currentURI && b.currentURI.spec.startsWith("moz-extension://") && b.currentURI.spec.endsWith("/index.html"));
function inContent(browser, code) {
  // A frame script runs `code` (an async function body with `doc` and `win`) in the remote page.
  const id = "mw-" + Math.random().toString(36).slice(2);
  const mm = browser.messageManager;
  return new Promise((resolve, reject) => {
    const listener = (m) => { mm.removeMessageListener(id, listener); m.data.error ? reject(new Error(m.data.error)) : resolve(m.data.value); };
    mm.addMessageListener(id, listener);
    const body = `(async () => { const win = content; const doc = content.document; ${code} })().then(` +
      `v => sendAsyncMessage(${JSON.stringify(id)}, {value: v === undefined ? null : v}), e => sendAsyncMessage(${JSON.stringify(id)}, {error: String(e && e.stack || e)}))`;
    mm.loadFrameScript("data:application/javascript;charset=utf-8," + encodeURIComponent(body), false);
  });
}
async function snapshot(browser) {
  const bitmap = await browser.browsingContext.currentWindowGlobal.drawSnapshot(null, 1, "white");
  const canvas = mailWindow().document.createElementNS("http://www.w3.org/1999/xhtml", "canvas");
  canvas.width = bitmap.width; canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return canvas.toDataURL("image/png");
}
"""


class Thunderbird:
    """One Thunderbird process with its Xvfb and openbox, in a directory of its own."""

    def __init__(self, imap_user: ImapUser, xpi: Path, *, email: str, managed: dict[str, object] | None = None, keep_log: Path | None = None) -> None:
        self.imap_user, self.xpi, self.email, self.managed, self.keep_log = imap_user, xpi, email, managed, keep_log
        self.dir = scratch_dir("mailwidget-thunderbird-")
        self.profile = self.dir / "profile"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.client: Any = None
        self.log_path = self.dir / "thunderbird.log"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Thunderbird:
        with warnings.catch_warnings():
            # marionette_driver pulls in mozrunner, mozinfo and telnetlib, which warn on import
            warnings.simplefilter("ignore", DeprecationWarning)
            from marionette_driver.marionette import Marionette

        (self.profile / "extensions").mkdir(parents=True)
        shutil.copy(self.xpi, self.profile / "extensions" / f"{EXTENSION_ID}.xpi")
        port = free_port()
        prefs = dict(PREFS, **self._account_prefs(), **{"marionette.port": port})
        (self.profile / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
        if self.managed is not None:
            # What an admin deploys per user on Linux; policies.json "3rdparty" feeds the same API.
            target = self.dir / ".mozilla" / "managed-storage"
            target.mkdir(parents=True)
            (target / f"{EXTENSION_ID}.json").write_text(json.dumps({"name": EXTENSION_ID, "description": "CRM backend", "type": "storage", "data": self.managed}))
        display = self._start_display()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOZ_", "WAYLAND"))}
        env.update(HOME=str(self.dir), DISPLAY=display, MOZ_CRASHREPORTER_DISABLE="1", TZ="Asia/Tokyo", LANG="en_US.UTF-8")
        self._spawn(["openbox"], env)
        log = self.log_path.open("wb")
        self._spawn([THUNDERBIRD, "--marionette", "-remote-allow-system-access", "--profile", str(self.profile), "--no-remote"], env, stdout=log)
        wait_for_port(port, timeout=90, what="thunderbird", alive=lambda: self.processes[-1].poll() is None)
        self.client = Marionette("127.0.0.1", port, startup_timeout=90)
        self.client.start_session()
        self.client.set_context(self.client.CONTEXT_CHROME)
        self.wait(lambda: self.js("return !!(mailWindow() && mailWindow().gTabmail && about3Pane())"), what="the mail window")
        self._log_in()
        return self

    def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # Thunderbird may already be gone; it is killed below
                self.client.delete_session()
            self.client = None
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()
        if self.keep_log is not None and self.log_path.exists():
            self.keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log_path, self.keep_log)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Thunderbird:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _spawn(self, argv: list[str], env: dict[str, str], stdout: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([*die_with_parent("TERM"), *argv], env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def _start_display(self) -> str:
        read, write = os.pipe()
        process = subprocess.Popen(
            [*die_with_parent("TERM"), "Xvfb", "-displayfd", str(write), "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
            pass_fds=(write,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        os.close(write)
        self.processes.append(process)
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        return f":{number}"

    def _account_prefs(self) -> dict[str, object]:
        u = self.imap_user
        return {
            "mail.account.account1.server": "server1", "mail.account.account1.identities": "id1",
            "mail.account.account2.server": "server2",
            "mail.accountmanager.accounts": "account1,account2", "mail.accountmanager.defaultaccount": "account1",
            "mail.accountmanager.localfoldersserver": "server2",
            "mail.server.server1.type": "imap", "mail.server.server1.hostname": u.host, "mail.server.server1.port": u.port,
            "mail.server.server1.socketType": 0, "mail.server.server1.authMethod": 3, "mail.server.server1.userName": u.name,
            "mail.server.server1.name": self.email, "mail.server.server1.using_subscription": False,
            "mail.server.server2.type": "none", "mail.server.server2.hostname": "Local Folders", "mail.server.server2.userName": "nobody",
            "mail.server.server2.name": "Local Folders",
            "mail.identity.id1.useremail": self.email, "mail.identity.id1.fullName": "Receiver",
        }

    def _log_in(self) -> None:
        u = self.imap_user
        self.js_async(
            """
            const [host, user, password, resolve] = arguments;
            const login = Cc["@mozilla.org/login-manager/loginInfo;1"].createInstance(Ci.nsILoginInfo);
            login.init(`imap://${host}`, null, `imap://${host}`, user, password, "", "");
            Services.logins.addLoginAsync(login).then(() => { server().performExpand(mailWindow().msgWindow); resolve(true); });
            """,
            u.host, u.name, u.password,
        )

    # -- scripting ----------------------------------------------------------------------

    def js(self, script: str, *args: object) -> Any:
        return self.client.execute_script(HELPERS + script, script_args=list(args), new_sandbox=False)

    def js_async(self, script: str, *args: object, timeout: float = 30) -> Any:
        return self.client.execute_async_script(HELPERS + script, script_args=list(args), new_sandbox=False, script_timeout=int(timeout * 1000))

    def wait(self, check: Callable[[], Any], *, timeout: float = 30, what: str = "a condition", interval: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r}); log tail: {self.log()[-1500:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- mail ---------------------------------------------------------------------------

    def show_message(self, folder: str, message_id: str, *, timeout: float = 60) -> None:
        """Display the message with this Message-ID of the server folder `folder` in the
        3-pane window, as a user clicking it would."""
        mid = message_id.strip("<>")
        kicked = [0.0]

        def shown() -> bool:
            # Folder discovery and the folder's update are asked for every 3 s, not at each
            # poll: asked again before it finished, a busy machine's IMAP sync never ends.
            kick = time.monotonic() - kicked[0] > 3
            if kick:
                kicked[0] = time.monotonic()
            return bool(self.js_async(
                """
                const [folderName, mid, kick, resolve] = arguments;
                const root = server().rootFolder;
                // by the server's own name (onlineName), or the decoded name of a top folder
                const folder = root.descendants.find(f => (f instanceof Ci.nsIMsgImapMailFolder && f.onlineName == folderName) || (f.parent == root && f.name == folderName));
                if (!folder) { if (kick) server().performExpand(mailWindow().msgWindow); return resolve(false); }
                const pane = about3Pane();
                if (pane.gFolder != folder) pane.displayFolder(folder.URI);
                const hdr = folder.msgDatabase && folder.msgDatabase.getMsgHdrForMessageID(mid);
                if (!hdr) { if (kick) folder.updateFolder(mailWindow().msgWindow); return resolve(false); }
                const index = pane.gDBView.findIndexOfMsgHdr(hdr, true);
                if (index < 0) return resolve(false);
                if (pane.threadTree.selectedIndex != index) pane.threadTree.selectedIndex = index;
                const shownMessage = pane.messageBrowser.contentWindow.gMessage;
                resolve(!!shownMessage && shownMessage.messageId == mid && !!pane.messageBrowser.contentDocument.getElementById("%s"));
                """.replace("%s", BUTTON_ID),
                folder, mid, kick,
            ))

        self.wait(shown, timeout=timeout, what=f"message {message_id} in {folder}", interval=0.3)

    def open_popup(self) -> None:
        """Press the widget's button in the message header, and wait for its page."""
        opened = "const b = popupBrowser(); return !!(b && b.isConnected && b.browsingContext && b.browsingContext.currentWindowGlobal);"
        for _attempt in range(10):  # a click while the extension is still starting is lost
            self.js("about3Pane().messageBrowser.contentDocument.getElementById(arguments[0]).click();", BUTTON_ID)
            try:
                self.wait(lambda: self.js(opened), timeout=3, what="the widget's popup")
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"the widget's popup did not open; log tail: {self.log()[-1500:]}")
        self.wait_popup("doc.readyState == 'complete' && !!doc.getElementById('status')", what="the popup's page")

    def close_popup(self) -> None:
        self.js("const b = popupBrowser(); if (b) { const panel = b.closest('panel'); if (panel) panel.hidePopup(); }")
        self.wait(lambda: self.js("const b = popupBrowser(); return !b || !b.closest('panel') || b.closest('panel').state == 'closed';"), what="the popup to close")

    def popup(self, code: str, timeout: float = 30) -> Any:
        """Run `code` (an async function body; `doc` is the popup's document) in the popup."""
        return self.js_async(
            "const [code, resolve] = arguments; const b = popupBrowser(); if (!b) return resolve({closed: true}); inContent(b, code).then(resolve, e => resolve({error: String(e)}));",
            code, timeout=timeout,
        )

    def wait_popup(self, condition: str, *, timeout: float = 30, what: str = "") -> Any:
        from marionette_driver.errors import ScriptTimeoutException

        def check() -> Any:
            try:
                result = self.popup(f"try {{ return ({condition}); }} catch (e) {{ return false; }}", timeout=3)
            except ScriptTimeoutException:
                return False  # the popup's page was being replaced: ask again
            if isinstance(result, dict) and result.get("closed"):
                # Thunderbird closed the popup (the message pane redrew under it): a user
                # would press the button again.
                self.open_popup()
                return False
            return result

        return self.wait(check, timeout=timeout, what=what or condition)

    def popup_screenshot(self, path: Path) -> None:
        self.browser_screenshot("popupBrowser()", path)

    def browser_screenshot(self, browser: str, path: Path) -> None:
        """A PNG of what the <browser> that the chrome expression `browser` names shows."""
        data = self.js_async(f"const [resolve] = arguments; snapshot({browser}).then(resolve, e => resolve(''));")
        if data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(data.split(",", 1)[1]))
