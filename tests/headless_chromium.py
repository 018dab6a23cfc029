"""A small client of headless Chromium's DevTools protocol over ``--remote-debugging-pipe`` (standard library
only: no webdriver, no websocket package), for the report's browser test.

Chromium reads commands on file descriptor 3 and writes replies and events on 4, each a JSON message ended
by a NUL byte. :class:`Browser` opens one page (a flat session attached to one target), keeps every event,
and collects what the page reports as an error: uncaught exceptions, ``console.error`` calls and error
entries of the browser's log (a resource that failed to load among them), in the page and its iframes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

# Flags that work in a container as root, without network: no sandbox (root), no GPU, nothing fetched.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    """Headless Chromium with one page; use as a context manager."""

    def __init__(self, executable: str, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="rsmooth-chromium-")
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # bash puts our pipe ends on the descriptors Chromium expects (3: commands, 4: replies); not sh:
        # dash takes single-digit descriptors only, and under pytest the pipes get higher ones.
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{commands_read} 4>&{replies_write}', "bash", executable, *FLAGS,
             f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(commands_read, replies_write), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.session = ""
        target = self.command("Target.createTarget", url="about:blank", session=False)["targetId"]
        self.session = self.command("Target.attachToTarget", targetId=target, flatten=True, session=False)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.command(f"{domain}.enable")

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already closed by an earlier close()
            os.close(self._commands)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._replies)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("no reply from Chromium in time")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise BrowserError(f"Chromium closed the pipe: {stderr[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _record(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text} ({details.get('url', '')}:{details.get('lineNumber')})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.errors.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.errors.append(
                f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')[:200]}"
            )

    def command(self, method: str, *, session: bool = True, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply (events that arrive meanwhile are recorded)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._record(reply)

    def evaluate(self, expression: str, context: int | None = None) -> Any:
        """The value of a JavaScript expression (promises awaited), in the page or in an execution context."""
        params: dict[str, Any] = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        if context is not None:
            params["contextId"] = context
        result = self.command("Runtime.evaluate", **params)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0, context: int | None = None) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression, context)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression[:300]}")
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.command("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def frame_contexts(self) -> dict[str, int]:
        """The default execution context of every frame: frame id -> context id (the newest one)."""
        contexts: dict[str, int] = {}
        destroyed = {
            e["params"]["executionContextId"]
            for e in self.events
            if e.get("method") == "Runtime.executionContextDestroyed"
        }
        for event in self.events:
            if event.get("method") == "Runtime.executionContextCreated":
                context = event["params"]["context"]
                aux = context.get("auxData", {})
                if aux.get("isDefault") and context["id"] not in destroyed:
                    contexts[aux["frameId"]] = context["id"]
        return contexts

    def screenshot(self, path: str | os.PathLike) -> Path:
        data = self.command("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path


def ensure_chromium() -> tuple[str | None, str]:
    """Chromium's path, installing Debian's ``chromium`` with apt-get when the tests run as root on
    Debian/Ubuntu (as tests/test_slurm.py installs SLURM); otherwise ``None`` and the reason to skip."""
    found = find_chromium()
    if found:
        return found, ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None or not Path("/etc/debian_version").exists():
        return None, "needs Chromium, or root on Debian/Ubuntu (apt-get) to install Debian's chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            return None, f"{' '.join(command)} failed: {result.stderr[-500:]}"
    found = find_chromium()
    return found, "" if found else "apt-get installed chromium, but no chromium executable is on PATH"


def child_frames(browser: Browser) -> list[str]:
    """The ids of the page's child frames (the report shows an HTML result in an iframe)."""
    tree = browser.command("Page.getFrameTree")["frameTree"]
    return [child["frame"]["id"] for child in tree.get("childFrames", [])]
