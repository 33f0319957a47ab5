"""Time from `modelyard serve --config bench/gateway.yaml` to its first 200 on a chat completion.

The fake upstream of the shared harness (../shared/bench/fake_upstream.py) answers; the gateway is
polled every 10 ms with the harness's request (the virtual key of bench/gateway.yaml). Several source
trees (`--src`) are run alternately, rep by rep, so a busy machine slows them alike; each run also
times `python -c pass` as the interpreter's own floor.

    python bench/startup_time.py -n 5 --src /work/main/src --src src
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BODY = b'{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chat_ok(port: int, key: str) -> bool:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("POST", "/v1/chat/completions", BODY, {"content-type": "application/json",
                                                         "authorization": f"Bearer {key}"})
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (/proc/PID/stat): less load-sensitive than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_200(src: str, upstream: int, out: Path) -> tuple[float, float]:
    port = free_port()
    key = "bench-key-startup-0123456789"
    env = {**os.environ, "PYTHONPATH": src, "UPSTREAM_URL": f"http://127.0.0.1:{upstream}/v1", "BENCH_KEY": key,
           "BENCH_OUT": str(out)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(HERE / "gateway.yaml"),
                             "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not chat_ok(port, key):
            if proc.poll() is not None or time.perf_counter() - t0 > 60:  # (exited: try it by hand)
                raise RuntimeError(f"gateway from {src} did not answer")
            time.sleep(0.01)
        return time.perf_counter() - t0, cpu_s(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def python_floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="reps per source tree")
    ap.add_argument("--src", action="append", help="a source tree to run (PYTHONPATH); default: this repo's src")
    shared = next((p / "shared" / "bench" / "fake_upstream.py" for p in HERE.parents
                   if (p / "shared" / "bench" / "fake_upstream.py").exists()), None)
    ap.add_argument("--out", help="directory of the request log (default: a fresh one); the harness reuses "
                    "one across reps, so later starts find the earlier reps' rows")
    ap.add_argument("--upstream", default=str(shared), help="the fake upstream (default: ../shared/bench's)")
    args = ap.parse_args()
    srcs = args.src or [str(HERE.parent / "src")]
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, args.upstream, str(up_port)], stdout=subprocess.DEVNULL,
                                start_new_session=True)
    times: dict[str, list[float]] = {s: [] for s in srcs}
    cpus: dict[str, list[float]] = {s: [] for s in srcs}
    floors: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.out or tmp)
            for _ in range(args.n):
                for s in srcs:
                    wall, cpu = first_200(s, up_port, out)
                    times[s].append(wall)
                    cpus[s].append(cpu)
                floors.append(python_floor())
    finally:
        os.killpg(upstream.pid, signal.SIGTERM)
        upstream.wait(timeout=10)
    print(f"load average {os.getloadavg()[0]:.1f}; python -c pass: median {statistics.median(floors):.3f} s")
    for s, ts in times.items():
        print(f"{s}: first 200 median {statistics.median(ts):.2f} s (runs: {', '.join(f'{t:.2f}' for t in ts)}); "
              f"CPU until then median {statistics.median(cpus[s]):.2f} s")


if __name__ == "__main__":
    main()
