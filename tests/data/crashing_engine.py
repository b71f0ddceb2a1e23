#!/usr/bin/env python3
"""An engine that crashes on purpose, standing in for llama-server (TOKENMILL_LLAMA_SERVER).

CRASH_AT=start: dies with SIGSEGV as it starts. CRASH_AT=decode (default): loads, answers
/health, then dies with SIGSEGV at the first completion, as the AMX build did.
"""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def crash(where: str) -> None:
    print(f"fake engine: crashing at {where}", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self) -> None:
        crash("first decode")


def main() -> None:
    print("fake engine: model loaded", flush=True)
    if os.environ.get("CRASH_AT") == "start":
        crash("start")
    port = int(sys.argv[sys.argv.index("--port") + 1])
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
