#!/usr/bin/env python3
"""Orders benchmark: Sluice against hand-written handlers, on one core.

Generates the reference orders workload (bench/workload/WORKLOAD.md), runs
`sluice run pipelines/orders/pipeline.yaml` on the JSON Lines file (with one
worker, and with two on two cores), Sluice in Lambda mode on Kinesis events of
10 000 and of 100 records (bench/lambda-orders-files.yaml, served the Lambda
Runtime API by bench/lambda_api.py), and on the Kinesis events of 100 records
the handlers a team would write instead: the peers of
bench/peers/ (a Rust chain with Rhai or with the transform in Rust, and
Node.js with Ajv) and the Python handlers (bench/workload/py_baseline/run.py,
`fast` and `plain`), every process pinned to the same core. Checks with
compare_sinks.py that each wrote the same sinks as python-fast, then prints
a Markdown table of throughput, peak memory and how Sluice compares.

Relative paths, given or default, are taken from the repository root, so the
command gives the same result from any working directory.

Exit status: 0 on success, 1 if a run fails or the sinks differ, 2 if
something the benchmark needs is missing.
"""
import argparse
import ctypes
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKLOAD = REPO / "bench" / "workload"
GENERATOR = WORKLOAD / "gen_orders.py"
COMPARE = WORKLOAD / "compare_sinks.py"
BASELINE = WORKLOAD / "py_baseline" / "run.py"
REQUIREMENTS = REPO / "bench" / "requirements.txt"
PIPELINE = "pipelines/orders/pipeline.yaml"
DEFAULT_PYTHON = ".venv-bench/bin/python"
DEFAULT_SLUICE = "target/release/sluice"
DEFAULT_WORKDIR = "target/bench"
DEFAULT_RUST_CHAIN = "target/peer/rust-chain"
DEFAULT_NODE_PEER = "target/peers/node_ajv"
SCHEMA = WORKLOAD / "schemas" / "order.schema.json"
BATCH = 100  # records per Kinesis event, Lambda's default batch size
BIG_BATCH = 10_000  # records per event of the large-batch Lambda row (Kinesis allows up to 10 000)
LAMBDA_PIPELINE = "bench/lambda-orders-files.yaml"
PLAIN_EVENT_LIMIT = 100  # event files given to the slow `plain` handler by default
PR_SET_CHILD_SUBREAPER = 36
SHM = Path("/dev/shm")
NPROC = len(os.sched_getaffinity(0))  # before main() moves itself off the measured core


def fail(message, status=1):
    print("orders.py: error: " + message, file=sys.stderr)
    sys.exit(status)


def info(message):
    print(message, file=sys.stderr, flush=True)


def from_repo(path):
    path = Path(path)
    return path if path.is_absolute() else REPO / path


def shown(path):
    """A path as printed: relative to the repository root when inside it."""
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return str(path)


def fmt_int(n):
    return f"{n:,}".replace(",", " ")


def parse_args():
    ap = argparse.ArgumentParser(
        prog="bench/orders.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="records to generate (default 100000)")
    ap.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    ap.add_argument("--runs", type=int, default=5,
                    help="timed runs per implementation; the table shows the median (default 5)")
    ap.add_argument("--sluice", metavar="PATH", default=DEFAULT_SLUICE,
                    help=f"Sluice binary (default {DEFAULT_SLUICE})")
    ap.add_argument("--python", metavar="PATH", default=None,
                    help=f"interpreter for the baselines (default {DEFAULT_PYTHON}, "
                         "created with bench/requirements.txt if missing)")
    ap.add_argument("--workdir", metavar="DIR", default=DEFAULT_WORKDIR,
                    help=f"folder for generated data, sinks and logs (default {DEFAULT_WORKDIR})")
    ap.add_argument("--report", metavar="FILE", default=None, help="also write the Markdown report to this file")
    ap.add_argument("--cpu", metavar="N", type=int, default=0, help="core every measured process is pinned to (default 0)")
    ap.add_argument("--full-plain", action="store_true",
                    help=f"give the slow `plain` handler every record, not only the first "
                         f"{PLAIN_EVENT_LIMIT} event files ({fmt_int(PLAIN_EVENT_LIMIT * BATCH)} records)")
    ap.add_argument("--skip-sluice", action="store_true",
                    help="run only the Python baselines (no Sluice binary needed)")
    ap.add_argument("--rust-chain", metavar="PATH", default=DEFAULT_RUST_CHAIN,
                    help=f"the Rust peer (default {DEFAULT_RUST_CHAIN}; bench/run builds it)")
    ap.add_argument("--node-peer", metavar="DIR", default=DEFAULT_NODE_PEER,
                    help=f"the Node.js peer, installed (default {DEFAULT_NODE_PEER}; bench/run installs it)")
    ap.add_argument("--skip-peers", action="store_true",
                    help="do not run the peers of bench/peers/")
    a = ap.parse_args()
    if a.n < 1 or a.runs < 1:
        ap.error("--n and --runs must be at least 1")
    return a


# --- measuring one process ------------------------------------------------------------

def become_subreaper():
    """Make orphaned descendants children of this process, so that launch() can reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        fail("prctl(PR_SET_CHILD_SUBREAPER) failed: " + os.strerror(errno), 2)


def launch(cmd, env, cpu, log_prefix):
    """Run `taskset -c CPU cmd...`; return (exit status, wall seconds, peak RSS in KiB).

    Linux carries the memory a process had before exec() into its ru_maxrss, and a
    child forked or vforked from this interpreter starts with the interpreter's
    memory (about 14 MiB). So the measured process is forked by a small /bin/sh
    instead: sh starts it in the background, prints its pid and exits; the
    process is then re-parented to this one (a child subreaper) and reaped with
    os.wait4(), whose ru_maxrss is the process's own peak RSS (KiB on Linux).
    The wall time is taken around the whole launch (sh adds about a millisecond).
    stdout and stderr go to LOG_PREFIX.out and LOG_PREFIX.err.
    """
    script = 'out=$1 err=$2; shift 2; "$@" </dev/null >"$out" 2>"$err" & echo $!'
    argv = ["/bin/sh", "-c", script, "sh", f"{log_prefix}.out", f"{log_prefix}.err",
            "taskset", "-c", str(cpu), *map(str, cmd)]
    start = time.perf_counter()
    sh = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, cwd=REPO)
    pid_text = sh.communicate()[0].decode().strip()
    if sh.returncode != 0 or not pid_text.isdigit():
        fail(f"could not start {cmd[0]} (see {log_prefix}.err)")
    pid = int(pid_text)
    try:
        _, status, usage = os.wait4(pid, 0)
    except BaseException:
        # A background job of sh ignores SIGINT, so stop it here.
        try:
            os.kill(pid, signal.SIGTERM)
            os.wait4(pid, 0)
        except OSError:
            pass
        raise
    wall = time.perf_counter() - start
    return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss


def tail(path, lines=20):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


# --- setup ----------------------------------------------------------------------------

def ensure_python(given):
    """The baseline interpreter; creates the default virtual environment if needed."""
    python = from_repo(given or DEFAULT_PYTHON)
    if not python.exists():
        if given:
            fail(f"{given} not found; create it with: python3 -m venv VENV && "
                 f"VENV/bin/pip install -r bench/requirements.txt", 2)
        venv = python.parent.parent
        info(f"creating {shown(venv)}: python3 -m venv {shown(venv)}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    check = subprocess.run([str(python), "-c", "import fastjsonschema, jsonschema"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if check.returncode != 0:
        if given:
            fail(f"{given} cannot import jsonschema and fastjsonschema; "
                 f"install them with: pip install -r bench/requirements.txt", 2)
        info(f"installing bench/requirements.txt into {shown(python.parent.parent)}")
        subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                        "-q", "-r", str(REQUIREMENTS)], check=True)
    return python


def ensure_data(workdir, n, seed):
    """Generate orders.jsonl and the Kinesis events unless already there for n/seed."""
    data = workdir / "data"
    jsonl, events, stamp_path = data / "orders.jsonl", data / "events", data / "stamp.json"
    stamp = {"n": n, "seed": seed, "batch": BATCH, "big_batch": BIG_BATCH,
             "generator_sha256": hashlib.sha256(GENERATOR.read_bytes()).hexdigest()}
    try:
        if json.loads(stamp_path.read_text()) == stamp and jsonl.is_file() and events.is_dir():
            info(f"data: reusing {shown(data)} (n={n}, seed={seed})")
            return jsonl, events
    except (OSError, ValueError):
        pass
    info(f"data: generating {fmt_int(n)} records (seed {seed}) into {shown(data)}")
    shutil.rmtree(data, ignore_errors=True)  # stale event files would be read too
    data.mkdir(parents=True)
    gen = [sys.executable, str(GENERATOR)]
    subprocess.run(gen + ["jsonl", "-n", str(n), "--seed", str(seed), "-o", str(jsonl)], check=True)
    subprocess.run(gen + ["kinesis", "-n", str(n), "--seed", str(seed), "--batch", str(BATCH),
                          "-o", str(events)], check=True)
    subprocess.run(gen + ["kinesis", "-n", str(n), "--seed", str(seed), "--batch", str(BIG_BATCH),
                          "-o", str(data / "events-big")], check=True)
    stamp_path.write_text(json.dumps(stamp) + "\n")
    return jsonl, events


# --- the implementations ----------------------------------------------------------------

def run_sluice(sluice, jsonl, workdir, n, i, runs, cpu, workers=1):
    """Run i of `runs`: `sluice run` with WORKERS workers, timed as a whole process."""
    name = "sluice" if workers == 1 else f"sluice-workers-{workers}"
    out_dir = workdir / "out" / name
    env = dict(os.environ, ORDERS_INPUT=str(jsonl), OUT_DIR=str(out_dir))
    cmd = [sluice, "run", PIPELINE, "--workers", str(workers), "--no-progress", "--summary-format", "json"]
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    log = workdir / "logs" / f"{name}-{i}"
    status, wall, rss = launch(cmd, env, cpu, log)
    if status != 0:
        fail(f"sluice exited with status {status} (run {i}); {shown(log)}.err ends with:\n"
             + tail(f"{log}.err"))
    lines = [line for line in tail(f"{log}.err", 1).splitlines() if line.strip()]
    try:
        summary = json.loads(lines[-1])
        records_in = summary["records_in"]
    except (IndexError, ValueError, KeyError, TypeError):
        fail(f"the last line of sluice's stderr is not a JSON summary with records_in "
             f"(run {i}); {shown(log)}.err ends with:\n" + tail(f"{log}.err"))
    if records_in != n:
        fail(f"sluice read {records_in} records, expected {n} (run {i})")
    info(f"{name} run {i}/{runs}: {n / wall:,.0f} records/s, {wall:.3f} s, "
         f"peak RSS {rss / 1024:.1f} MiB")
    return {"impl": name, "records": n, "rps": n / wall, "rss_kib": rss,
            "out": out_dir}


def run_sluice_lambda(sluice, events, workdir, n, i, runs, cpu, batch):
    """Sluice in Lambda mode: the same binary started as a `provided.al2023`
    bootstrap, served the Runtime API by bench/lambda_api.py's RuntimeApi, and
    handed the Kinesis events one after another (warm: one process for run i).
    Each invocation is timed as Lambda reports its Duration: from handing out
    the event to the response's arrival. Records/s is all records over the
    sum of the durations; the median invocation time is given too."""
    sys.path.insert(0, str(REPO / "bench"))
    from lambda_api import RuntimeApi, status_kib  # noqa: E402  (bench/lambda_api.py)

    name = f"sluice-lambda-{batch}"
    bodies = [p.read_bytes() for p in sorted(Path(events).iterdir())]
    # A file sink syncs its file before each invocation answers; the peers
    # never sync. On a memory-backed folder the sync costs nothing, so the
    # figure is Sluice's work, not the disk's.
    out_dir = (SHM / "sluice-bench" / name) if SHM.is_dir() else (workdir / "out" / name)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    api = RuntimeApi()
    env = {"PATH": os.environ.get("PATH", ""), "OUT_DIR": str(out_dir),
           "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}", "AWS_LAMBDA_FUNCTION_NAME": "orders",
           "AWS_LAMBDA_FUNCTION_VERSION": "1", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
           "SLUICE_PIPELINE": str(REPO / LAMBDA_PIPELINE),
           # As the template `sluice deploy` writes sets it.
           "MIMALLOC_ARENA_EAGER_COMMIT": "0"}
    log = workdir / "logs" / f"{name}-{i}"
    with open(f"{log}.err", "wb") as err:
        proc = subprocess.Popen(["taskset", "-c", str(cpu), str(sluice)], env=env, cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    durations = []
    try:
        for k, body in enumerate(bodies):
            response, seconds = api.invoke(f"r{k}", body)
            if response != {"batchItemFailures": []}:
                fail(f"{name}: invocation {k} answered {response}")
            durations.append(seconds)
        peak = status_kib(proc.pid, "VmHWM")
    finally:
        proc.kill()
        proc.wait()
        api.server.shutdown()
    info(f"{name} run {i}/{runs}: {n / sum(durations):,.0f} records/s, "
         f"median invocation {statistics.median(durations) * 1000:.2f} ms")
    return {"impl": name, "records": n, "rps": n / sum(durations), "rss_kib": peak,
            "out": out_dir, "invocation_ms": statistics.median(durations) * 1000, "batch": batch}


def merge_rounds(rows):
    """One implementation's row from its rounds: the median rate, the largest peak."""
    row = dict(rows[-1], rps=statistics.median(r["rps"] for r in rows),
               rss_kib=max(r["rss_kib"] for r in rows))
    if "invocation_ms" in row:
        row["invocation_ms"] = statistics.median(r["invocation_ms"] for r in rows)
    return row


def run_baseline(python, handler, events, workdir, runs, cpu, limit, n):
    out_dir = workdir / "out" / f"py-{handler}"
    cmd = [python, BASELINE, "--events", events, "--handler", handler, "--runs", str(runs),
           "--out", out_dir]
    if limit:
        cmd += ["--limit", str(limit)]
    log = workdir / "logs" / f"py-{handler}"
    info(f"python-{handler}: {runs} run(s) in one process" + (f", first {limit} event files" if limit else ""))
    status, _, rss = launch(cmd, dict(os.environ), cpu, log)
    if status != 0:
        fail(f"run.py --handler {handler} exited with status {status}; {shown(log)}.err ends with:\n"
             + tail(f"{log}.err"))
    try:
        result = json.loads(tail(f"{log}.out", 1))
        records, rps = result["records"], result["median_rps_wall"]
    except (ValueError, KeyError, TypeError):
        fail(f"run.py --handler {handler} printed no result line; see {shown(log)}.out")
    if not limit and records != n:
        fail(f"python-{handler} processed {records} records, expected {n}")
    info(f"python-{handler}: {rps:,} records/s (median), peak RSS {rss / 1024:.1f} MiB")
    return {"impl": f"python-{handler}", "records": records, "rps": rps, "rss_kib": rss, "out": out_dir}


def run_peer(name, cmd, out, env, workdir, cpu, n):
    """A peer of bench/peers/: it prints one JSON line with records and median_rps_wall."""
    log = workdir / "logs" / name
    info(f"{name}: all runs in one process")
    status, _, rss = launch(cmd, env, cpu, log)
    if status != 0:
        fail(f"{name} exited with status {status}; {shown(log)}.err ends with:\n" + tail(f"{log}.err"))
    try:
        result = json.loads(tail(f"{log}.out", 1))
        records, rps = result["records"], result["median_rps_wall"]
    except (ValueError, KeyError, TypeError):
        fail(f"{name} printed no result line; see {shown(log)}.out")
    if records != n:
        fail(f"{name} processed {records} records, expected {n}")
    info(f"{name}: {rps:,.0f} records/s (median), peak RSS {rss / 1024:.1f} MiB")
    return {"impl": name, "records": records, "rps": rps, "rss_kib": rss, "out": out}


def run_peers(a, events, workdir):
    rust = from_repo(a.rust_chain)
    node = from_repo(a.node_peer)
    if not rust.is_file():
        fail(f"{a.rust_chain} not found; build it with `cargo build --profile peer -p rust-chain` "
             "(bench/run does), or pass --skip-peers", 2)
    if not (node / "node_modules" / "ajv").is_dir():
        fail(f"{a.node_peer} is not installed; see bench/peers/README.md (bench/run installs it), "
             "or pass --skip-peers", 2)
    rows = []
    for transform in ("rhai", "native"):
        name = f"rust-chain-{transform}"
        out = workdir / "out" / name
        cmd = [rust, events, SCHEMA, out, str(a.runs), "--transform", transform]
        rows.append(run_peer(name, cmd, out, dict(os.environ), workdir, a.cpu, a.n))
    out = workdir / "out" / "node-ajv"
    env = dict(os.environ, ORDER_SCHEMA=str(SCHEMA))
    rows.append(run_peer("node-ajv", ["node", node / "run.js", events, out, str(a.runs)],
                         out, env, workdir, a.cpu, a.n))
    return rows


def compare(a, b):
    """compare_sinks.py A B: (every sink the same, its output lines)."""
    proc = subprocess.run([sys.executable, str(COMPARE), str(a["out"]), str(b["out"])],
                          capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    ok = (proc.returncode == 0 and len(lines) == 3
          and all(line.partition("records:")[2].strip().startswith("same") for line in lines))
    if proc.stderr.strip():
        lines.append(proc.stderr.strip())
    return ok, lines


# --- the report -----------------------------------------------------------------------

def machine(python):
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True).stdout.strip()
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Machine: {cpu}, nproc {NPROC}, kernel {platform.release()}; "
            f"baselines on Python {version}; {now}.")


def targets(rows):
    """The ratios issue targets are stated in, for the rows that ran."""
    by = {r["impl"]: r for r in rows}

    def rps(name):
        return by[name]["rps"] if name in by else None

    out = []

    def ratio(what, num, den, goal):
        if num and den:
            out.append(f"| {what} | {num / den:.2f}× | {goal} |")

    ratio("file mode ÷ rust-chain-rhai", rps("sluice"), rps("rust-chain-rhai"), "≥ 1.5×")
    ratio(f"Lambda, {fmt_int(BIG_BATCH)}-record events ÷ rust-chain-rhai",
          rps(f"sluice-lambda-{BIG_BATCH}"), rps("rust-chain-rhai"), "≥ 1.5×")
    ratio("file mode ÷ node-ajv", rps("sluice"), rps("node-ajv"), "≥ 2×")
    ratio(f"Lambda, {fmt_int(BIG_BATCH)}-record events ÷ node-ajv",
          rps(f"sluice-lambda-{BIG_BATCH}"), rps("node-ajv"), "≥ 2×")
    small = by.get(f"sluice-lambda-{BATCH}")
    if small and rps("node-ajv"):
        node_ms = BATCH / rps("node-ajv") * 1000
        out.append(f"| Lambda, median {BATCH}-record invocation ({small['invocation_ms']:.2f} ms) "
                   f"÷ node-ajv's time for {BATCH} records ({node_ms:.2f} ms) "
                   f"| {small['invocation_ms'] / node_ms:.2f}× | ≤ 0.5× |")
    ratio("`--workers 2` ÷ `--workers 1`", rps("sluice-workers-2"), rps("sluice"), "≥ 1.9×")
    if not out:
        return []
    return ["", "| comparison | measured | target |", "| --- | ---: | ---: |", *out]


def report(rows, a, python, plain_limited, checks):
    runs = a.runs
    fast = next(r for r in rows if r["impl"] == "python-fast")
    sluice = next((r for r in rows if r["impl"] == "sluice"), None)
    out = [
        f"| implementation | records | records/s (median of {runs}) | µs/record "
        "| peak RSS (MiB) | ratio vs python-fast | sluice ÷ this |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        versus = f"{sluice['rps'] / r['rps']:.2f}×" if sluice else ""
        out.append(f"| {r['impl']} | {fmt_int(r['records'])} | {fmt_int(round(r['rps']))} "
                   f"| {1e6 / r['rps']:.2f} | {r['rss_kib'] / 1024:.1f} | {r['rps'] / fast['rps']:.2f}× "
                   f"| {versus} |")
    out += targets(rows)
    notes = f"Workload: n={a.n}, seed={a.seed}; every process pinned to CPU {a.cpu}. "
    if not a.skip_sluice:
        notes += ("sluice reads the JSON Lines file and is timed as a whole process "
                  "(start-up, reading and sink writes included); sluice-workers-2 likewise, on "
                  "two cores. sluice-lambda-N is the same binary in Lambda mode (one warm process "
                  f"per run, {LAMBDA_PIPELINE}) handed Kinesis events of N records through the "
                  "Runtime API, timed as Lambda's Duration: from handing out each event to its "
                  "response; its sinks are on a memory-backed folder (/dev/shm), since a file "
                  "sink syncs before each answer and the peers never sync; its peak RSS is VmHWM. ")
    if not a.skip_sluice:
        notes += ("Sluice's rows ran in interleaved rounds (each round runs every one of them "
                  "once); each peer and Python handler runs all its runs in one process, as a warm "
                  "function would. ")
    notes += ("The peers (rust-chain, node-ajv) and the Python handlers read the Kinesis events "
              "and time themselves from the event text in memory to the sink lines written "
              "(start-up and file loading excluded, which favours them). Peak RSS is the measured "
              "process's own ru_maxrss")
    notes += ", the largest over the sluice runs." if not a.skip_sluice else "."
    out += ["", machine(python), "", notes]
    if plain_limited:
        out.append(f"python-plain ran on the first {PLAIN_EVENT_LIMIT} event files only "
                   f"({fmt_int(PLAIN_EVENT_LIMIT * BATCH)} records); use --full-plain for all.")
    out.append("")
    if checks:
        for (left, right), (ok, lines) in checks:
            out.append(f"Sinks, `compare_sinks.py` {left} {right}: {'same' if ok else 'DIFFERENT'}")
            out += ["", "```", *lines, "```", ""]
    else:
        out.append("Sinks not compared: no Sluice run and python-plain did not see every record.")
    return "\n".join(out).rstrip("\n") + "\n"


def main():
    a = parse_args()
    if shutil.which("taskset") is None:
        fail("taskset not found; it pins every measured process to one core. "
             "Install util-linux (e.g. `apt-get install util-linux`).", 2)
    if a.cpu not in os.sched_getaffinity(0):
        fail(f"CPU {a.cpu} is not available to this process; choose another with --cpu", 2)
    sluice = None
    if not a.skip_sluice:
        sluice = from_repo(a.sluice)
        if not sluice.is_file():
            fail(f"{a.sluice} not found; build it with `cargo build --release` "
                 "(or run bench/run, which builds it first)", 2)
        if not (REPO / PIPELINE).is_file():
            fail(f"{PIPELINE} not found", 2)
    become_subreaper()
    python = ensure_python(a.python)
    workdir = from_repo(a.workdir)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    jsonl, events = ensure_data(workdir, a.n, a.seed)

    # This process serves the Lambda Runtime API: keep it off the measured core.
    others = os.sched_getaffinity(0) - {a.cpu}
    if others:
        os.sched_setaffinity(0, others)

    rows = []
    sluice_rows = []
    if sluice:
        # Sluice's rows in interleaved rounds: round i runs every variant once.
        variants = [lambda i: run_sluice(sluice, jsonl, workdir, a.n, i, a.runs, a.cpu)]
        if others:
            cpus = f"{a.cpu},{min(others)}"
            variants.append(lambda i: run_sluice(sluice, jsonl, workdir, a.n, i, a.runs, cpus,
                                                 workers=2))
        for batch, folder in ((BIG_BATCH, events.parent / "events-big"), (BATCH, events)):
            variants.append(lambda i, b=batch, f=folder: run_sluice_lambda(
                sluice, f, workdir, a.n, i, a.runs, a.cpu, b))
        rounds = [[variant(i) for variant in variants] for i in range(1, a.runs + 1)]
        sluice_rows = [merge_rounds([r[k] for r in rounds]) for k in range(len(variants))]
    rows += sluice_rows
    peers = [] if a.skip_peers else run_peers(a, events, workdir)
    rows += peers
    fast = run_baseline(python, "fast", events, workdir, a.runs, a.cpu, 0, a.n)
    rows.append(fast)
    event_files = -(-a.n // BATCH)
    plain_limited = not a.full_plain and event_files > PLAIN_EVENT_LIMIT
    plain = run_baseline(python, "plain", events, workdir, a.runs, a.cpu,
                         PLAIN_EVENT_LIMIT if plain_limited else 0, a.n)
    rows.append(plain)

    pairs = [(r, fast) for r in sluice_rows]
    pairs += [(p, fast) for p in peers]
    if not plain_limited:
        pairs.append((plain, fast))
    checks = [((p[0]["impl"], p[1]["impl"]), compare(*p)) for p in pairs]

    text = report(rows, a, python, plain_limited, checks)
    print(text, end="")
    if a.report:
        path = from_repo(a.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        info(f"report written to {shown(path)}")
    if not all(ok for _, (ok, _) in checks):
        fail("the sinks differ (see above)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
