"""Fixtures for the console's browser tests: a real bitcask-server per test
(in a fresh directory, on a port it picks) and headless Chromium (the
system's, driven by Playwright; no browser download).

Environment: BITCASK_SERVER (the server binary, required), CHROMIUM
(default /usr/bin/chromium), UI_SCREENSHOTS (where screenshots go; default
target/ui-screenshots).
"""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[4]
SCREENSHOTS = pathlib.Path(os.environ.get("UI_SCREENSHOTS", ROOT / "target" / "ui-screenshots"))


class Response:
    """An HTTP answer: status, headers (lower-case names), body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self):
        return json.loads(self.body)


class Server:
    """A bitcask-server process on 127.0.0.1, stopped by `stop`."""

    def __init__(self, flags=(), token=None, wait=True):
        self.dir = tempfile.TemporaryDirectory(prefix="bitcask-ui-")
        self.token = token
        args = [os.environ["BITCASK_SERVER"], "--port", "0", "--data-dir", self.dir.name,
                "--log-format", "json", *flags]
        env = dict(os.environ)
        if token:
            env["BITCASK_AUTH_TOKEN"] = token
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.http = self._address("http")
        self.resp = None
        if "--resp-port" in flags:
            self.resp = self._address("resp")
        self.url = f"http://{self.http}"
        if wait:
            self.wait_healthy()

    def wait_healthy(self):
        """Waits until /health answers 200 (a cluster node: once it has a leader)."""
        deadline = time.monotonic() + 30
        while self.request("GET", "/health").status != 200:
            assert time.monotonic() < deadline, "the server did not become healthy: " + self._log_text()[-2000:]
            time.sleep(0.02)

    def _address(self, field):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self._log_text()
            self.log.seek(0)
            for line in self.log.read().decode(errors="replace").splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("message") == "bitcask-server starting":
                    return event[field]
            time.sleep(0.02)
        raise AssertionError("no start line: " + self._log_text())

    def _log_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def request(self, method, path, body=None, headers=None):
        """One HTTP call with the token (if any); never raises on a status."""
        headers = dict(headers or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if isinstance(body, str):
            body = body.encode()
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())
        except (ConnectionError, urllib.error.URLError):
            return Response(0, {}, b"")

    def put(self, key, value, ttl=None, headers=None):
        """Stores raw bytes (or text) at `key`; answers the response."""
        path = "/kv/" + urllib.request.quote(key, safe="")
        if ttl:
            path += f"?ttl={ttl}"
        return self.request("PUT", path, value if isinstance(value, bytes) else value.encode(),
                            {"Content-Type": "application/octet-stream", **(headers or {})})

    def get(self, key):
        """The raw value, ETag and expiry of `key`: a Response (404 if absent)."""
        return self.request("GET", "/kv/" + urllib.request.quote(key, safe=""),
                            headers={"Accept": "application/octet-stream"})

    def batch(self, ops):
        r = self.request("POST", "/batch", json.dumps({"ops": ops}), {"Content-Type": "application/json"})
        assert r.status == 200, r.body
        return r

    def resp_command(self, *parts):
        """Sends one RESP command (bytes or str parts); answers the raw reply."""
        host, port = self.resp.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            out = b"*%d\r\n" % len(parts)
            for p in parts:
                p = p if isinstance(p, bytes) else p.encode()
                out += b"$%d\r\n%s\r\n" % (len(p), p)
            s.sendall(out)
            return s.recv(4096)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.dir.cleanup()


@pytest.fixture
def start_server():
    """Starts servers with the given flags; stops them after the test."""
    started = []

    def start(*flags, token=None, wait=True):
        server = Server(flags, token=token, wait=wait)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        b = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


class Page:
    """A browser tab with what went wrong in it: script errors, CSP reports,
    dialogs (an `alert` would be an injected script running)."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.tab = self.context.new_page()
        self.errors = []
        self.dialogs = []
        self.tab.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.tab.on("console", self._console)
        self.tab.on("dialog", self._dialog)

    def _console(self, message):
        if message.type == "error" and ("Content Security Policy" in message.text or "Refused" in message.text):
            self.errors.append(f"console: {message.text}")

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def screenshot(self, name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@pytest.fixture
def page(browser):
    p = Page(browser)
    yield p
    errors, dialogs = p.errors, p.dialogs
    p.context.close()
    assert not errors, errors
    assert not dialogs, dialogs
