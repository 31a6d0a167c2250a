#!/usr/bin/env python3
"""Load test of `refract serve` on loopback: continuous batching vs one request at a time.

Makes a random `small`-preset model (`refract model init --preset small`, the demo's tokenizer),
starts `refract serve` on a free port and sends chat completions (text prompts, greedy, fixed
max_tokens) from C concurrent clients, each sending R requests back to back, then the same kind
of request one at a time. Reports completion tokens/s of both, their ratio, p50 / p99 latency
and the failed requests (anything but a 200 with the expected shape). Standard library only.

    python3 bench/serve/serve_load.py --refract build/refract [--clients 16 64] [--requests_per_client 2]
        [--max_tokens 64] [--sequential 8] [--threads 2] [--keep DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_server(refract, model, threads, max_num_seqs, log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [refract, "serve", "--model", model, "--port", "0", "--threads", str(threads), "--served_model_name", "small",
         "--max_num_seqs", str(max_num_seqs), "--max_queued_requests", "256", "--max_connections", "256",
         "--max_completion_length", "512", "--request_timeout", "3600"],
        stdout=subprocess.PIPE, stderr=log, text=True)
    line = ""
    while "listening on" not in line:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"refract serve exited; see {log_path}")
    port = int(line.split("http://")[1].split(" ")[0].rsplit(":", 1)[1])
    return proc, port, log


def one_request(port, i, max_tokens):
    """Returns (latency seconds, completion tokens) or raises."""
    body = json.dumps({"model": "small", "temperature": 0, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": f"Request {i}: describe shape {i % 7} at {i}."}]})
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
    j = json.loads(data)
    if j.get("object") != "chat.completion" or not j["choices"]:
        raise RuntimeError(f"unexpected body {data[:200]!r}")
    return dt, j["usage"]["completion_tokens"]


def run_concurrent(port, clients, per_client, max_tokens, first_id):
    results, failures, lock = [], [], threading.Lock()

    def client(c):
        for k in range(per_client):
            i = first_id + c * per_client + k
            try:
                res = one_request(port, i, max_tokens)
                with lock:
                    results.append(res)
            except Exception as e:  # noqa: BLE001
                with lock:
                    failures.append(str(e))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, results, failures


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refract", default=os.path.join(ROOT, "build", "refract"))
    ap.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--requests_per_client", type=int, default=2)
    ap.add_argument("--sequential", type=int, default=8, help="requests sent one at a time for the baseline")
    ap.add_argument("--max_tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", help="keep the model and the server log in this directory")
    args = ap.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="refract_serve_load_")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "small")
    if not os.path.exists(os.path.join(model, "config.json")):
        subprocess.run([args.refract, "model", "init", "--preset", "small", "--tokenizer",
                        os.path.join(ROOT, "assets", "demo_warm_start"), "--output", model, "--seed", "0"],
                       check=True, stdout=subprocess.DEVNULL)
        for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            src = os.path.join(ROOT, "assets", "demo_warm_start", f)
            if not os.path.exists(os.path.join(model, f)):
                shutil.copy(src, model)
    proc, port, log = start_server(args.refract, model, args.threads, max(args.clients), os.path.join(work, "serve.log"))
    report = {"max_tokens": args.max_tokens, "threads": args.threads}
    try:
        one_request(port, -1, 4)  # warm-up
        t0 = time.perf_counter()
        seq = [one_request(port, 10_000 + i, args.max_tokens) for i in range(args.sequential)]
        seq_time = time.perf_counter() - t0
        seq_tps = sum(t for _, t in seq) / seq_time
        report["sequential"] = {"requests": len(seq), "tokens_per_s": round(seq_tps, 1),
                                "p50_s": round(statistics.median(d for d, _ in seq), 3)}
        print(f"sequential: {len(seq)} requests, {seq_tps:.1f} completion tokens/s, "
              f"p50 {statistics.median(d for d, _ in seq):.2f} s", flush=True)
        for c in args.clients:
            wall, res, fails = run_concurrent(port, c, args.requests_per_client, args.max_tokens, 100_000 * c)
            tps = sum(t for _, t in res) / wall
            lat = [d for d, _ in res]
            row = {"requests": len(res) + len(fails), "failed": len(fails), "tokens_per_s": round(tps, 1),
                   "speedup": round(tps / seq_tps, 2), "p50_s": round(percentile(lat, 50), 3) if lat else None,
                   "p99_s": round(percentile(lat, 99), 3) if lat else None, "wall_s": round(wall, 1)}
            report[f"clients_{c}"] = row
            print(f"{c} clients: {row['requests']} requests, {row['failed']} failed, {tps:.1f} completion tokens/s "
                  f"({row['speedup']}x sequential), p50 {row['p50_s']} s, p99 {row['p99_s']} s", flush=True)
            for f in fails[:3]:
                print("  failure:", f)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report))
    failed = sum(v.get("failed", 0) for v in report.values() if isinstance(v, dict))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
