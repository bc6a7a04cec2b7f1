//! Opening a pipeline for any mode: loading and building it, the async
//! runtime of its requests, its source and its outputs. `sluice run`, the
//! daemon and Lambda mode all start here, so none depends on another.

use std::sync::Arc;

use crate::aws::Clients;
use crate::config::{self, Env, LoadError, Loaded};
use crate::delivery::Error;
use crate::diagnostics::Severity;
use crate::diagnostics::render::{self, Format};
use crate::engine::Built;
use crate::engine::run::Outputs;
use crate::exit::{EXIT_INVALID, EXIT_UNREADABLE};
use crate::sinks::{self, BuildCx};
use crate::sources;
use crate::sources::Reader;
use crate::sources::shards::group::Member;
use crate::sources::shards::lease::Settings;

/// What a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The pipeline's source.
    Source,
    /// The pipeline's dead-letter queue (`sluice dlq redrive`).
    Redrive,
}

/// Loads, checks and builds a pipeline; on failure, prints why and gives
/// the exit code. With `json_logs`, each diagnostic is a JSON log line.
pub(crate) fn load(file: &std::path::Path, json_logs: bool) -> Result<(Loaded, Arc<Built>), i32> {
    let report = |diags: &crate::diagnostics::Diagnostics| {
        if !json_logs {
            crate::err!("{}", render::text(diags, Format::Human));
            return;
        }
        for (severity, line) in render::short_lines(diags) {
            let level = match severity {
                Severity::Error => "error",
                Severity::Warning => "warn",
            };
            crate::logs::json(level, &line);
        }
    };
    let loaded = match config::load(file, &Env::process()) {
        Ok(l) => l,
        Err(e) => {
            report(e.diagnostics());
            return Err(match e {
                LoadError::Unreadable(_) => EXIT_UNREADABLE,
                LoadError::Invalid(_) => EXIT_INVALID,
            });
        }
    };
    if !loaded.diagnostics.list.is_empty() {
        report(&loaded.diagnostics);
    }
    match Built::new(&loaded) {
        Ok(b) => Ok((loaded, Arc::new(b))),
        Err(e) if json_logs => {
            crate::logs::json("error", &e.to_string());
            Err(EXIT_INVALID)
        }
        Err(e) => {
            crate::errln!("error: {e}");
            Err(EXIT_INVALID)
        }
    }
}

/// The runtime of the SDK's requests and the signal handlers: small, as
/// the CPU stages run on their own threads.
pub(crate) fn io_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Opens the pipeline's source. A Kinesis or DynamoDB stream is read as a
/// member of the pipeline's worker group, with `worker`'s settings: the
/// member is returned too, to keep and release the leases.
pub(crate) async fn open_source(
    loaded: &Loaded,
    aws: Option<Arc<Clients>>,
    worker: Settings,
) -> Result<(Reader, Option<Member>), Error> {
    let resolve = |path: &str| loaded.resolve(path);
    let cx = sources::OpenCx {
        pipeline: &loaded.pipeline.name,
        resolve: &resolve,
        aws,
        worker,
    };
    loaded.pipeline.source.open(cx).await
}

/// How `sluice run` takes part in its stream's worker group: under the
/// host's name, so that a run restarted on the same host after a crash
/// takes its leases back at once (another host waits the failover time).
pub(crate) fn run_worker(retry: &crate::delivery::Policy) -> Settings {
    Settings {
        worker: format!("run@{}", host_name()),
        failover: std::time::Duration::from_secs(10),
        retry: retry.clone(),
    }
}

/// Starts the sinks and the DLQ (and the AWS clients, when one of them needs them).
pub(crate) async fn open_outputs(
    loaded: &Loaded,
    dlq: &sinks::Config,
    mode: Mode,
    aws: Option<Arc<Clients>>,
) -> Result<Outputs, Error> {
    let p = &loaded.pipeline;
    let resolve = |path: &str| loaded.resolve(path);
    let cx = BuildCx {
        pipeline: &p.name,
        resolve: &resolve,
        aws,
        retry: &p.retry,
    };
    let mut out = Vec::new();
    for (name, sink) in &p.sinks {
        // A redrive adds to what the sinks hold: file sinks never start afresh.
        let sink = match mode {
            Mode::Redrive => sink.for_redrive(),
            Mode::Source => sink.clone(),
        };
        let w = sink
            .open(&cx)
            .await
            .map_err(|e| e.context(format!("sink `{name}`")))?;
        out.push((name.clone(), w));
    }
    let dlq = dlq
        .open(&cx)
        .await
        .map_err(|e| e.context("the dead-letter queue"))?;
    // DynamoDB lookups read on the workers' threads, through this runtime;
    // lookup files kept in S3 are read now.
    if let Some(aws) = &cx.aws {
        loaded
            .lookups
            .connect(aws.dynamodb(), &tokio::runtime::Handle::current(), &p.retry);
        loaded
            .lookups
            .fetch(aws.s3(), &p.retry)
            .await
            .map_err(Error::fatal)?;
    }
    let dedup = match &p.dedup {
        Some(d) => Some(crate::dedup::Dedup {
            store: crate::dedup::Store::open(&d.store, cx.aws.clone(), &p.retry)
                .await
                .map_err(|e| e.context("the dedup store"))?,
            ttl: d.ttl.0,
            claims: Default::default(),
        }),
        None => None,
    };
    let mut outputs = Outputs::new(
        out,
        dlq,
        p.retry.clone(),
        p.sinks
            .values()
            .map(|s| s.retry().unwrap_or(&p.retry).clone())
            .collect(),
        p.dlq.as_sink().retry().unwrap_or(&p.retry).clone(),
        Arc::from(p.name.as_str()),
    );
    outputs.dedup = dedup;
    Ok(outputs)
}

/// This host's name (`sluice` when it cannot be told).
pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "sluice".into())
}
