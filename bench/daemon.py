#!/usr/bin/env python3
"""Daemon soak benchmark: `sluice daemon` workers read the orders workload
from a Kinesis stream while a producer writes it at a steady rate, and the
archive goes to S3 (bench/aws-orders-s3.yaml). Both AWS services are a
moto_server on this machine.

  cargo build --release
  python3 bench/daemon.py [--rate 1000] [--duration 60] [--shards 4] [--workers 2] [--sluice PATH]

Every second it reads each worker's /metrics and reports, once the producer
stops and the workers have read everything:

- sustained records/s: records read by all workers per second while the
  producer ran (the first 5 s left out), and whether they kept up with it;
- lag: records written to the stream and not yet through the pipeline
  (written - `sluice_records_in_total`), median, p99 and largest while the
  producer ran; the most records read and not yet checkpointed
  (`sluice_shard_records_in_flight`); the largest
  `sluice_shard_millis_behind_latest` a worker reported;
- drain: how long after the last write every record was read;
- peak RSS of each worker (VmHWM);
- nothing lost: the S3 archive and dead-letter objects, read back, hold
  every record written, once (the counts of WORKLOAD.md's proportions).

moto shares the 2 cores with the workers and the producer and slows as
shards fill (keep rate x duration under about 20 000 records per shard):
the figures are a floor set by the emulator, not a figure for AWS.
"""
import argparse
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from aws import free_port, in_venv  # noqa: E402  the venv with moto, a free port


def wait_port(port, what):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("bench/daemon.py: %s did not listen on port %d" % (what, port))


def metrics(port):
    """The samples of a worker's /metrics: {"name{labels}": value}."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def total(samples, prefix):
    return sum(v for k, v in samples.items() if k.startswith(prefix))


def peak_rss_mib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=1000, help="records written per second")
    ap.add_argument("--duration", type=int, default=60, help="seconds of writing")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="sluice daemon processes")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sluice", default=str(REPO / "target" / "release" / "sluice"))
    a = ap.parse_args()
    if not Path(a.sluice).exists():
        sys.exit("bench/daemon.py: %s is missing: run `cargo build --release`" % a.sluice)
    in_venv(__file__)

    import boto3

    n = a.rate * a.duration
    gen = subprocess.run([sys.executable, str(REPO / "bench" / "workload" / "gen_orders.py"), "jsonl",
                          "-n", str(n), "--seed", str(a.seed), "-o", "-"], check=True, capture_output=True, text=True)
    lines = gen.stdout.splitlines()

    port = free_port()
    endpoint = "http://127.0.0.1:%d" % port
    procs = []
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(server)
    try:
        wait_port(port, "moto_server")
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
        kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        kinesis, s3 = (boto3.client(s, **kw) for s in ("kinesis", "s3"))
        kinesis.create_stream(StreamName="orders", ShardCount=a.shards)
        s3.create_bucket(Bucket="orders-archive")
        s3.create_bucket(Bucket="orders-dead-letters")

        workers = []
        for w in range(a.workers):
            mport = free_port()
            log = open(os.devnull, "w")
            p = subprocess.Popen([a.sluice, "daemon", str(REPO / "bench" / "aws-orders-s3.yaml"),
                                  "--worker-id", "soak-%d" % (w + 1), "--listen", "127.0.0.1:%d" % mport,
                                  "--failover-time", "6s"], env=env, stdout=subprocess.DEVNULL, stderr=log)
            procs.append(p)
            workers.append((p, mport))
        for _, mport in workers:
            wait_port(mport, "sluice daemon")
        # Let the group settle its leases before the load starts.
        deadline = time.time() + 60
        while time.time() < deadline:
            held = [metrics(m).get('sluice_leases_held{pipeline="orders",worker="soak-%d"}' % (i + 1), 0)
                    for i, (_, m) in enumerate(workers)]
            if sum(held) == a.shards and max(held) - min(held) <= 1:
                break
            time.sleep(0.5)

        produced = [0]
        done = threading.Event()

        def produce():
            start = time.perf_counter()
            step = max(a.rate // 10, 1)  # ten puts a second
            i = 0
            while i < len(lines):
                chunk = lines[i:i + step]
                for j in range(0, len(chunk), 500):
                    kinesis.put_records(StreamName="orders", Records=[
                        {"Data": l.encode(), "PartitionKey": "k%d" % ((i + j + k) % 64)}
                        for k, l in enumerate(chunk[j:j + 500])])
                i += len(chunk)
                produced[0] = i
                ahead = start + i / a.rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            done.set()

        samples = []  # (t, produced, read, in_flight, millis_behind)
        t0 = time.perf_counter()
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        drained_at = None
        ended_at = None
        while True:
            time.sleep(1)
            ms = [metrics(m) for _, m in workers]
            read = sum(total(m, "sluice_records_in_total") for m in ms)
            in_flight = sum(total(m, "sluice_shard_records_in_flight") for m in ms)
            behind = max([v for m in ms for k, v in m.items() if k.startswith("sluice_shard_millis_behind_latest")] or [0])
            t = time.perf_counter() - t0
            samples.append((t, produced[0], read, in_flight, behind))
            if done.is_set() and ended_at is None:
                ended_at = t
            if done.is_set() and read >= len(lines):
                drained_at = t
                break
            if t > a.duration * 4 + 120:
                sys.exit("bench/daemon.py: the workers read %d of %d records in %.0f s" % (read, len(lines), t))

        steady = [s for s in samples if 5 <= s[0] <= ended_at]
        rate = (steady[-1][2] - steady[0][2]) / max(steady[-1][0] - steady[0][0], 1e-3) if len(steady) > 1 else 0
        wrote = (steady[-1][1] - steady[0][1]) / max(steady[-1][0] - steady[0][0], 1e-3) if len(steady) > 1 else 0
        lag = [p - r for (t, p, r, _f, _b) in samples if t <= ended_at]
        in_flight = max(s[3] for s in samples)
        ms_behind = max(s[4] for s in samples)
        final = [metrics(m) for _, m in workers]
        rss = [peak_rss_mib(p.pid) for p, _ in workers]
        for p, _ in workers:
            p.terminate()
        codes = [p.wait(timeout=60) for p, _ in workers]

        # Nothing lost: read the archive and the dead letters back.
        def lines_in(bucket):
            count = 0
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                    if o["Key"].endswith(".gz"):
                        body = gzip.decompress(body)
                    count += len(body.splitlines())
            return count
        archived, dead = lines_in("orders-archive"), lines_in("orders-dead-letters")
        filtered = sum(total(m, "sluice_filtered_total") for m in final)

        print("| figure | value |")
        print("| --- | ---: |")
        print("| records written (%d/s for %d s, %d shards, %d workers) | %d |" % (a.rate, a.duration, a.shards, a.workers, len(lines)))
        print("| records written per second (steady, producer side) | %.0f |" % wrote)
        print("| sustained records read per second (all workers) | %.0f |" % rate)
        print("| lag in records: median / p99 / max | %d / %d / %d |" % (
            statistics.median(lag), sorted(lag)[int(len(lag) * 0.99) - 1 if len(lag) > 1 else 0], max(lag)))
        print("| most records read and not yet checkpointed | %d |" % in_flight)
        print("| largest millis behind latest reported | %d |" % ms_behind)
        print("| drain after the last write | %.1f s |" % (drained_at - ended_at))
        print("| peak RSS per worker | %s MiB |" % " / ".join("%.1f" % r for r in rss))
        print("| archived + filtered + dead-lettered | %d + %d + %d = %d |" % (
            archived, filtered, dead, archived + filtered + dead))
        print()
        print("moto_server, the producer and the workers share this machine's cores.")
        if archived + filtered + dead != len(lines):
            sys.exit("bench/daemon.py: %d records written, %d accounted for" % (len(lines), archived + filtered + dead))
        if any(c != 0 for c in codes):
            sys.exit("bench/daemon.py: a worker exited with %s after SIGTERM" % codes)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
