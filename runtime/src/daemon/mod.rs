//! `sluice daemon PIPELINE`: the pipeline as a long-running service (ECS,
//! Kubernetes, a VM).
//!
//! With a `kinesis` or `dynamodb_streams` source, every daemon of the same
//! pipeline on the same stream joins one worker group: the shards are
//! shared through leases in the source's checkpoint table (see
//! [`crate::sources::lease`]). With an `sqs` source, the queue itself shares
//! the messages. Either way, a batch
//! is acknowledged only once every record of it is delivered or
//! dead-lettered.
//!
//! On SIGTERM or SIGINT the daemon stops reading, delivers what it read,
//! writes the last checkpoints and releases its leases, within the grace
//! period; past it, it releases its leases anyway and exits with status 3
//! (the records it had not acknowledged are read again by the next owner).

pub mod http;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::aws::Clients;
use crate::duration::Dur;
use crate::engine::open::{Mode, host_name, io_runtime, load, open_outputs, open_source};
use crate::engine::run::{self, Options};
use crate::exit::{EXIT_INVALID, EXIT_OK, EXIT_RUN_FAILED, EXIT_UNREADABLE};
use crate::logs;
use crate::metrics::prometheus::Live;
use crate::sources::shards::lease::Settings;
use crate::sources::{self, Stop};

/// Arguments of `sluice daemon`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (its source: `kinesis`, `dynamodb_streams` or `sqs`), or an
    /// `s3://bucket/folder/pipeline.yaml` URL: the folder is copied at start.
    pub file: PathBuf,
    /// This worker's name in its group; unique per process.
    /// Default: the host name, the process id and a random suffix.
    #[arg(long, env = "SLUICE_WORKER_ID")]
    pub worker_id: Option<String>,
    /// A lease not renewed for this long is taken over by another worker.
    /// Leases are renewed and balanced every third of it.
    #[arg(long, env = "SLUICE_FAILOVER_TIME", default_value = "10s", value_parser = parse_duration)]
    pub failover_time: Dur,
    /// On SIGTERM: time to drain, checkpoint and release the leases
    /// (ECS sends SIGKILL 30 s after SIGTERM by default).
    #[arg(long, env = "SLUICE_GRACE_PERIOD", default_value = "25s", value_parser = parse_duration)]
    pub grace_period: Dur,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
    /// Threads for parse, validate and transform (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Records per batch (at most this many per `GetRecords`).
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
    /// Most bytes of source records held between reading and acknowledging
    /// them (`256MiB`, `64MB`): reading waits while they are in flight.
    #[arg(long, env = "SLUICE_MAX_IN_FLIGHT_BYTES", default_value = "256MiB", value_parser = crate::config::size::parse_bytes)]
    pub max_in_flight_bytes: u64,
}

fn parse_duration(s: &str) -> Result<Dur, String> {
    humantime::parse_duration(s)
        .map(Dur)
        .map_err(|e| e.to_string())
}

/// The default worker name: host, process id and a random suffix.
fn default_worker_id() -> String {
    format!(
        "{}-{}-{:04x}",
        host_name(),
        std::process::id(),
        fastrand::u16(..)
    )
}

/// Time kept back from the grace period to release the leases.
const RELEASE_TIME: Duration = Duration::from_secs(2);

/// Runs the daemon until a signal; returns the exit code.
pub fn main(args: &Args) -> i32 {
    // Every line the daemon writes is a JSON log line, from the first on.
    let fail = |code: i32, message: &str| {
        logs::json("error", message);
        code
    };
    let rt = match io_runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_RUN_FAILED, &e),
    };
    let file = match args.file.to_str().and_then(|f| f.strip_prefix("s3://")) {
        Some(url) => match rt.block_on(crate::config::fetch::pipeline(url)) {
            Ok(path) => path,
            Err(e) => return fail(EXIT_UNREADABLE, &format!("{}: {e}", args.file.display())),
        },
        None => args.file.clone(),
    };
    let (loaded, built) = match load(&file, true) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let p = &loaded.pipeline;
    let worker = args.worker_id.clone().unwrap_or_else(default_worker_id);
    logs::set_fields(&[("pipeline", &p.name), ("worker", &worker)]);
    if let Some(why) = p.refusal(sources::RunMode::Daemon) {
        return fail(EXIT_INVALID, &why);
    }
    // Bound before any lease is taken, so a port in use costs the group nothing.
    let listener = match rt.block_on(tokio::net::TcpListener::bind(args.listen)) {
        Ok(l) => l,
        Err(e) => {
            return fail(
                EXIT_UNREADABLE,
                &format!("cannot listen on {}: {e}", args.listen),
            );
        }
    };
    let listening = listener.local_addr().unwrap_or(args.listen);
    let aws = Arc::new(rt.block_on(Clients::load(&p.aws, p.retry.attempt_timeout.0)));

    let settings = Settings {
        worker: worker.clone(),
        failover: args.failover_time.0,
        retry: p.retry.clone(),
    };
    // The source: for a stream, a reader that follows this worker's leases.
    let (reader, member) = match rt.block_on(open_source(&loaded, Some(Arc::clone(&aws)), settings))
    {
        Ok(opened) => opened,
        Err(e) => return fail(EXIT_UNREADABLE, &e.message),
    };
    let mut outputs = match rt.block_on(open_outputs(
        &loaded,
        &p.dlq.as_sink(),
        Mode::Source,
        Some(Arc::clone(&aws)),
    )) {
        Ok(o) => o,
        Err(e) => {
            // The leases just taken go back to the group at once.
            if let Some(m) = &member {
                rt.block_on(m.leave());
            }
            return fail(EXIT_UNREADABLE, &e.message);
        }
    };

    // The HTTP endpoint.
    let live = Arc::new(Live::default());
    let state = Arc::new(http::State {
        pipeline: p.name.clone(),
        sinks: built.sink_names.clone(),
        live: Arc::clone(&live),
        lag: member.as_ref().map(|m| Arc::clone(&m.lag)),
        group: member
            .as_ref()
            .map(|m| (worker.clone(), Arc::clone(&m.shared))),
        ready: AtomicBool::new(false),
        failover: args.failover_time.0,
        lookups: Arc::clone(&built.lookups),
    });
    rt.spawn(http::serve(listener, Arc::clone(&state)));

    if let Some(m) = &member {
        m.keep_leases(rt.handle());
    }

    // Signals: stop reading, then drain within the grace period.
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let stopping = Arc::clone(&stopping);
        let state = Arc::clone(&state);
        let member = member.clone();
        let grace = args.grace_period.0;
        rt.spawn(async move {
            signal().await;
            logs::json(
                "info",
                &format!("stopping: delivering what was read, then releasing the leases (grace period {grace:?})"),
            );
            state.ready.store(false, Ordering::Relaxed);
            stopping.store(true, Ordering::Relaxed);
            if let Some((_, shared)) = &state.group {
                shared.stop_taking();
            }
            tokio::time::sleep(grace.saturating_sub(RELEASE_TIME)).await;
            let released = match &member {
                Some(m) => m.leave().await,
                None => 0,
            };
            logs::json(
                "error",
                &format!("the grace period ran out before every batch read was delivered: released {released} leases; the records not acknowledged will be read again"),
            );
            std::process::exit(EXIT_RUN_FAILED);
        });
    }

    let opts = Options {
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        batch_records: args.batch_records,
        progress: false,
        stop: Stop::default(),
        stopping: Arc::clone(&stopping),
        live: Some(live),
        json_logs: true,
        max_in_flight_bytes: args.max_in_flight_bytes,
    };
    state.ready.store(true, Ordering::Relaxed);
    logs::json(
        "info",
        &format!(
            "started: reading the `{}` source; metrics and probes on http://{listening}",
            p.source.type_name()
        ),
    );
    let report = run::run(built, reader, &mut outputs, &opts, &rt);
    state.ready.store(false, Ordering::Relaxed);
    let released = match &member {
        Some(m) => rt.block_on(m.leave()),
        None => 0,
    };
    let c = &report.counts;
    let summary = format!(
        "stopped after {:.1} s: {} records in, {} delivered, {} filtered, {} dead-lettered, {} unrouted, {} deduplicated; released {released} leases",
        report.elapsed.as_secs_f64(),
        c.records_in,
        c.delivered,
        c.filtered + c.dropped_invalid,
        c.dead_lettered_total(),
        c.unrouted,
        c.deduplicated
    );
    match &report.error {
        Some(e) => fail(
            EXIT_RUN_FAILED,
            &format!("{summary}; the run stopped early: {e}"),
        ),
        None if !c.balanced() => fail(
            EXIT_RUN_FAILED,
            &format!("{summary}; the counts do not add up"),
        ),
        None => {
            logs::json("info", &summary);
            EXIT_OK
        }
    }
}

/// Waits for SIGTERM (ECS, Kubernetes) or SIGINT.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
