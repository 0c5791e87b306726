#!/usr/bin/env python3
"""Start-up time of a server (`status-service serve`, the Go peer): from
process start to its first answer (any HTTP status) and to its first 200 on
/service-a/healthcheck (SERVING).

    startup.py SERVER PORT RUNS COMMAND...

The environment configures the service (SERVICE_NAME=service-a,
SERVER_PORT=PORT, ...). Prints one JSON line per run, named SERVER (run.sh
appends them to results.jsonl).
"""
import http.client
import json
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.0005  # between attempts
LIMIT_SECONDS = 10  # per run


def healthcheck(port):
    """The HTTP status of one healthcheck, or None while nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/service-a/healthcheck")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def once(command, port):
    """Seconds from start to the first answer and to the first 200."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    first_answer = None
    try:
        while time.perf_counter() - start < LIMIT_SECONDS:
            status = healthcheck(port)
            elapsed = time.perf_counter() - start
            if status is not None:
                first_answer = first_answer or elapsed
                if status == 200:
                    return first_answer, elapsed
            elif process.poll() is not None:
                sys.exit(f"startup.py: {' '.join(command)} exited with {process.returncode}")
            time.sleep(POLL_SECONDS)
        sys.exit(f"startup.py: no 200 from port {port} within {LIMIT_SECONDS} s")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main():
    server, port, runs, command = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    for run in range(1, runs + 1):
        first_answer, first_200 = once(command, port)
        print(json.dumps({
            "kind": "startup",
            "server": server,
            "run": run,
            "first_answer_ms": round(first_answer * 1000, 2),
            "first_200_ms": round(first_200 * 1000, 2),
        }), flush=True)


if __name__ == "__main__":
    main()
