#!/usr/bin/env python3
"""Lambda benchmark: init (cold start) and warm invocation times of the
orders pipeline in Lambda mode, the binary's stripped size, and peak RSS.

  cargo build --profile lambda-release
  python3 bench/lambda.py [--runs 50] [--big 20] [--sluice PATH] [--moto]

The function is the binary `cargo lambda build --profile lambda-release`
ships (the same code, built for the host), started as Lambda starts a
`provided.al2023` bootstrap. This script serves it the Lambda Runtime API
(the four calls a runtime makes) and takes the times the Lambda service
reports:

- init: from starting the process until it asks for its first event (the
  REPORT line's Init Duration), median of --runs cold starts;
- warm invocation: from handing out an event until the response arrives
  (Duration), for Kinesis events of 100 and of 5 000 orders as
  bench/workload/gen_orders.py writes them (5 000 orders make about 6 MB,
  the largest payload Lambda hands a function), median and p90;
- steady RSS: VmRSS of the function after the 100-record invocations;
- peak RSS: VmHWM of the function after all invocations: the 6 MB events
  are handed out back to back, --big of them (the resident memory of an
  allocator grows over the first few; 20 reach where it stays).

By default the pipeline is bench/lambda-orders-files.yaml, the orders
pipeline with its sinks on local files, so the figures are Sluice's own work.
With --moto, it is pipelines/orders/kinesis.yaml unchanged, its S3 and SQS
sinks on a moto_server on this machine: then the times are mostly moto's.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIG = 5_000  # orders per large event: about 6 MB of event
sys.path.insert(0, str(REPO / "bench"))
from lambda_api import RuntimeApi, status_kib  # noqa: E402  (bench/lambda_api.py)


def start_function(sluice, api, pipeline, env):
    full = dict(env,
                AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % api.port,
                AWS_LAMBDA_FUNCTION_NAME="orders", AWS_LAMBDA_FUNCTION_VERSION="1",
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024", SLUICE_PIPELINE=str(pipeline))
    started = time.perf_counter()
    proc = subprocess.Popen([sluice], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, started


def events(n, batch, tmp):
    out = Path(tmp) / ("events-%d" % batch)
    subprocess.run([sys.executable, str(REPO / "bench/workload/gen_orders.py"), "kinesis",
                    "-n", str(n), "--seed", "42", "--batch", str(batch), "-o", str(out)], check=True)
    return [p.read_bytes() for p in sorted(out.iterdir())]


def start_moto():
    """moto_server (from the test venv) with the orders pipeline's buckets and queue."""
    sys.path.insert(0, str(REPO / "bench"))
    import aws  # bench/aws.py: the test venv and a free port

    py = aws.python()
    port = aws.free_port()
    endpoint = "http://127.0.0.1:%d" % port
    server = subprocess.Popen([str(py.parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    setup = """
import boto3, sys
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing",
          aws_secret_access_key="testing")
s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
s3.create_bucket(Bucket="orders-archive")
s3.create_bucket(Bucket="orders-dead-letters")
sqs.create_queue(QueueName="big-orders")
"""
    for _ in range(300):
        if subprocess.run([str(py), "-c", setup, endpoint], capture_output=True).returncode == 0:
            return server, endpoint
        time.sleep(0.1)
    server.kill()
    sys.exit("bench/lambda.py: moto_server did not start")


def rss_mib(pid, field):
    return status_kib(pid, field) / 1024


def ms(seconds):
    return seconds * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50, help="cold starts, and warm 100-record invocations")
    ap.add_argument("--big", type=int, default=20, help="warm 5 000-record invocations, back to back")
    ap.add_argument("--sluice", default=str(REPO / "target" / "lambda-release" / "sluice"),
                    help="the binary (default: the lambda-release profile's, which `cargo lambda build` ships)")
    ap.add_argument("--moto", action="store_true", help="pipelines/orders/kinesis.yaml with its sinks on moto_server")
    a = ap.parse_args()
    if not Path(a.sluice).exists():
        sys.exit("bench/lambda.py: %s is missing: run `cargo build --profile lambda-release`" % a.sluice)
    tmp = tempfile.mkdtemp(prefix="sluice-lambda-bench-")
    # As the template sluice deploy writes sets it (docs/lambda.md).
    env = {"PATH": os.environ.get("PATH", ""), "OUT_DIR": tmp, "MIMALLOC_ARENA_EAGER_COMMIT": "0"}
    pipeline = REPO / "bench/lambda-orders-files.yaml"
    moto = None
    if a.moto:
        moto, endpoint = start_moto()
        env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        pipeline = REPO / "pipelines/orders/kinesis.yaml"
    small = events(a.runs * 100, 100, tmp)
    big = events(5 * BIG, BIG, tmp)
    big = [big[i % len(big)] for i in range(a.big)]

    stripped = Path(tmp) / "sluice-stripped"
    subprocess.run(["strip", "-o", str(stripped), a.sluice], check=True)
    size = stripped.stat().st_size / 1e6

    inits = []
    for i in range(a.runs):
        api = RuntimeApi()
        proc, started = start_function(a.sluice, api, pipeline, env)
        while api.first_next is None and api.init_error is None:
            if proc.poll() is not None:
                sys.exit("bench/lambda.py: the function exited: %s" % proc.stderr.read().decode())
            time.sleep(0.0005)
        if api.init_error is not None:
            sys.exit("bench/lambda.py: init failed: %s" % api.init_error.decode())
        inits.append(api.first_next - started)
        if i + 1 < a.runs:
            proc.kill()
            proc.wait()
            api.server.shutdown()

    # The last environment serves the warm invocations.
    api.invoke("warm-up", small[0])
    warm100 = []
    for n, body in enumerate(small[1:]):
        response, d = api.invoke("s%d" % n, body)
        assert response == {"batchItemFailures": []}, response
        warm100.append(d)
    steady = rss_mib(proc.pid, "VmRSS")
    warm_big = []
    for n, body in enumerate(big):
        response, d = api.invoke("b%d" % n, body)
        assert response == {"batchItemFailures": []}, response
        warm_big.append(d)
    rss = rss_mib(proc.pid, "VmHWM")
    proc.kill()
    proc.wait()
    api.server.shutdown()
    if moto is not None:
        moto.kill()
    shutil.rmtree(tmp, ignore_errors=True)

    def p90(v):
        return sorted(v)[int(0.9 * (len(v) - 1))]

    print("pipeline:                 %s" % pipeline.relative_to(REPO))
    print("init (cold start):        median %.1f ms, p90 %.1f ms (%d starts)" % (
        ms(statistics.median(inits)), ms(p90(inits)), len(inits)))
    print("warm, 100-record batch:   median %.2f ms, p90 %.2f ms (%d invocations)" % (
        ms(statistics.median(warm100)), ms(p90(warm100)), len(warm100)))
    print("warm, %d-record batch:  median %.1f ms, p90 %.1f ms (%d invocations of %.1f MB; %.0f records/s)" % (
        BIG, ms(statistics.median(warm_big)), ms(p90(warm_big)), len(warm_big),
        statistics.mean(len(b) for b in big) / 1e6, BIG / statistics.median(warm_big)))
    print("binary, stripped:         %.1f MB" % size)
    print("RSS after the 100-record invocations: %.1f MiB" % steady)
    print("peak RSS:                 %.1f MiB" % rss)


if __name__ == "__main__":
    main()
