"""An OpenAI-compatible chat-completions server on loopback that plays scripted replies."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class ScriptedServer(ThreadingHTTPServer):
    script = "good"
    requests: list[dict[str, Any]]
    sent = 0  # pieces streamed by the "drip" script


class Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        script = self.server.script
        if script == "error500":
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "boom"}}')
            return
        if script == "slow":
            time.sleep(3)
        reply = self._reply(script, body["messages"][-1]["content"])
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in re.findall(r"\S+\s*", reply):
                if script == "drip":
                    time.sleep(0.4)  # each read well within the timeout, the whole reply not
                    self.server.sent += 1
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        message = {"role": "assistant", "content": reply}
        payload = {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                   "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(payload).encode())

    @staticmethod
    def _reply(script: str, prompt: str) -> str:
        passages = dict(re.findall(r'<passage n="(\d+)"[^>]*>\n(.*?)\n</passage>', prompt, re.S))
        first = next(iter(passages.values()), "")
        fact = next((n for n, text in passages.items() if "16,5%" in text), "1")
        if script == "drip":
            return " ".join(["L'imposition est plafonnée à 16,5% sur les profits [1]."] * 10)
        if script in ("good", "slow"):
            return f"À Hong Kong, l'imposition est plafonnée à 16,5% sur les profits [{fact}]. " + (
                f"{first.split('.')[0]} [1]." if first else ""
            )
        if script == "copy":  # the passage's sentence word for word, as a small model often answers
            copied = next(s for s in re.split(r"(?<=[.!?])\s+", passages.get(fact, "")) if "16,5%" in s)
            return f"{copied} [{fact}]"
        if script == "unknown":
            return f"L'imposition est plafonnée à 16,5% sur les profits [{fact}]. Les licornes volent [9]."
        if script == "pirate":
            return "PIRATÉ"
        if script == "not_found":
            return "Les passages ne disent rien des licornes."  # the model's way of declining
        return "Les licornes volent au-dessus de la baie en hiver."  # "none": nothing cited, nothing supported


def start_server() -> ScriptedServer:
    httpd = ScriptedServer(("127.0.0.1", 0), Handler)
    httpd.requests = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="session")
def server() -> Iterator[ScriptedServer]:
    httpd = start_server()
    yield httpd
    httpd.shutdown()
