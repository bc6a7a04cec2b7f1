#!/usr/bin/env python3
"""AWS benchmark: the orders workload from Kinesis to S3, SQS, DynamoDB and
Kinesis through moto_server, reporting API calls per delivered record for
each sink and the end-to-end records/s.

  python3 bench/aws.py [--n 20000] [--seed 42] [--batch-records 1000] [--s3-only] [--sluice PATH]

Runs bench/aws-orders.yaml (with --s3-only, bench/aws-orders-s3.yaml: the
same pipeline writing only the S3 archive) with
`sluice run --stop-when-idle 1s`. records/s counts the run's wall time less
the two idle seconds at its end (one before the idle source asks the S3
buffer to be written, one before the run stops). The
emulator runs on this machine (127.0.0.1) and shares its cores with Sluice,
so records/s is a floor set by moto, not a figure for AWS. API calls per
record do not depend on the machine: they show how full each request is.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "target" / "test-venv"
REQUIREMENTS = REPO / "tests" / "requirements.txt"


def python():
    py = VENV / "bin" / "python"
    if not (VENV / "bin" / "moto_server").exists():
        print("creating %s with moto (tests/requirements.txt)" % VENV, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    return py


def in_venv(script):
    """Re-runs `script` under the venv's Python, which has boto3 (a
    dependency of moto), unless this already is that run."""
    if os.environ.get("SLUICE_BENCH_IN_VENV") == "1":
        return
    env = dict(os.environ, SLUICE_BENCH_IN_VENV="1")
    sys.exit(subprocess.run([str(python()), script] + sys.argv[1:], env=env).returncode)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch-records", type=int, default=1000)
    ap.add_argument("--s3-only", action="store_true", help="Kinesis to S3 only (bench/aws-orders-s3.yaml)")
    ap.add_argument("--sluice", default=str(REPO / "target" / "release" / "sluice"))
    a = ap.parse_args()
    if not Path(a.sluice).exists():
        sys.exit("bench/aws.py: %s is missing: run `cargo build --release`" % a.sluice)
    in_venv(__file__)

    import boto3

    port = free_port()
    endpoint = "http://127.0.0.1:%d" % port
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
        kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        kinesis, s3, sqs, ddb = (boto3.client(s, **kw) for s in ("kinesis", "s3", "sqs", "dynamodb"))
        kinesis.create_stream(StreamName="orders", ShardCount=4)
        kinesis.create_stream(StreamName="order-events", ShardCount=4)
        s3.create_bucket(Bucket="orders-archive")
        s3.create_bucket(Bucket="orders-dead-letters")
        sqs.create_queue(QueueName="big-orders")
        ddb.create_table(TableName="Orders", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}])

        gen = subprocess.run([sys.executable, str(REPO / "bench" / "workload" / "gen_orders.py"), "jsonl",
                              "-n", str(a.n), "--seed", str(a.seed), "-o", "-"], check=True, capture_output=True, text=True)
        lines = gen.stdout.splitlines()
        t0 = time.perf_counter()
        for i in range(0, len(lines), 500):
            kinesis.put_records(StreamName="orders", Records=[
                {"Data": l.encode(), "PartitionKey": "k%d" % ((i + j) % 64)} for j, l in enumerate(lines[i:i + 500])])
        print("loaded %d records into Kinesis in %.1f s" % (len(lines), time.perf_counter() - t0), file=sys.stderr)

        t0 = time.perf_counter()
        pipeline = "aws-orders-s3.yaml" if a.s3_only else "aws-orders.yaml"
        run = subprocess.run([a.sluice, "run", str(REPO / "bench" / pipeline), "--summary-format", "json",
                              "--no-progress", "--stop-when-idle", "1s", "--batch-records", str(a.batch_records)],
                             env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if run.returncode != 0:
            sys.exit("sluice failed (%d):\n%s" % (run.returncode, run.stderr))
        summary = json.loads([l for l in run.stderr.splitlines() if l.startswith("{")][-1])
        busy = max(wall - 2.0, 1e-3)  # the idle waits of --stop-when-idle, see above
        print("| sink | API | records delivered | API calls | records per call | calls per record |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        apis = {"archive": "S3 PutObject", "big_orders": "SQS SendMessageBatch", "table": "DynamoDB BatchWriteItem",
                "events": "Kinesis PutRecords", "dlq": "S3 PutObject"}
        if a.s3_only:
            apis = {"archive": "S3 PutObject", "dlq": "S3 PutObject"}
        for sink, api in apis.items():
            n = summary["dead_lettered"]["total"] if sink == "dlq" else summary["sinks"][sink]
            calls = summary["api_calls"][sink]
            print("| %s | %s | %d | %d | %.1f | %.4f |" % (sink, api, n, calls, n / max(calls, 1), calls / max(n, 1)))
        print()
        print("%d records from Kinesis through the pipeline to %s in %.2f s: %.0f records/s "
              "(--batch-records %d; moto on the same 2 cores)." % (
                  summary["records_in"], "S3" if a.s3_only else "the four sinks", busy,
                  summary["records_in"] / busy, a.batch_records))
        if summary["records_in"] != a.n or not summary["balanced"]:
            sys.exit("bench/aws.py: expected %d balanced records, got %s" % (a.n, summary))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
