"""The Lambda Runtime API of one execution environment, served to a function
started as Lambda starts a `provided.al2023` bootstrap: the four calls a
runtime makes (next invocation, response, invocation error, init error),
and the times the Lambda service reports (Init Duration, Duration).
Used by bench/lambda.py and bench/orders.py."""
import json
import queue
import sys
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/2018-06-01/runtime"


class RuntimeApi:
    """The Runtime API of one execution environment: hands out queued events
    and records when each was handed out and answered."""

    def __init__(self):
        self.events = queue.Queue()
        self.answers = queue.Queue()
        self.first_next = None
        self.init_error = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def reply(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != API + "/invocation/next":
                    return self.reply(404)
                if api.first_next is None:
                    api.first_next = time.perf_counter()
                request_id, body = api.events.get()
                api.handed_out = time.perf_counter()
                deadline = int(time.time() * 1000) + 900_000
                self.reply(200, body, [
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                    ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:orders"),
                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                    ("Content-Type", "application/json"),
                ])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                if self.path == API + "/init/error":
                    api.init_error = body
                    api.answers.put(("init-error", body, now))
                elif self.path.endswith("/response") or self.path.endswith("/error"):
                    api.answers.put((self.path.rsplit("/", 1)[1], body, now - api.handed_out))
                self.reply(202, b"{}")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a function killed while it waits for its next event

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, request_id, body):
        """Queues an event; its response and the function's duration in seconds."""
        self.events.put((request_id, body))
        kind, answer, duration = self.answers.get(timeout=300)
        if kind != "response":
            sys.exit("bench/lambda.py: invocation %s: %s %s" % (request_id, kind, answer.decode()))
        return json.loads(answer), duration


def status_kib(pid, field):
    """A field of /proc/PID/status in KiB: VmRSS (resident now) or VmHWM (peak)."""
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0
