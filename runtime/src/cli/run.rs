//! `sluice run PIPELINE`: run a pipeline over its whole input.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::{EXIT_OK, EXIT_OVER_LIMIT, EXIT_RUN_FAILED, EXIT_UNREADABLE};
use crate::aws::Clients;
use crate::duration::Dur;
pub(crate) use crate::engine::open::Mode;
use crate::engine::open::{io_runtime, load, open_outputs, open_source, run_worker};
use crate::engine::reasons::Reasons;
use crate::engine::run::{self, Options, Report};
use crate::metrics::Counts;
use crate::record::Stage;
use crate::sources::Stop;

/// Arguments of `sluice run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file.
    pub file: PathBuf,
    /// Worker threads for parse, validate and transform (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Records per batch; `meta.batch_time` is taken once per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
    /// Never show the progress bar (it is shown only when standard error is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Stream sources: stop once no record arrived for this long (`5s`, `1m`).
    /// Without it, a stream runs until SIGINT or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub stop_when_idle: Option<Dur>,
    /// How to print the summary on standard error.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Human)]
    pub summary_format: SummaryFormat,
    /// Most bytes of source records held between reading and acknowledging
    /// them (`256MiB`, `64MB`, `1000000`): reading waits while they are in
    /// the queues, the workers and the sinks' buffers.
    #[arg(long, default_value = "256MiB", value_parser = crate::config::size::parse_bytes)]
    pub max_in_flight_bytes: u64,
    /// Exit with code 4 when the run dead-lettered more records than this:
    /// a number (`100`) or a share of the records read (`1%`, `0.5%`).
    /// Checked when the run ends.
    #[arg(long, value_name = "N|P%", value_parser = parse_limit)]
    pub max_dead_letters: Option<Limit>,
    /// The same for the records filtered (by a transform, or by
    /// `on_invalid: drop`).
    #[arg(long, value_name = "N|P%", value_parser = parse_limit)]
    pub max_filtered: Option<Limit>,
    /// Scripts' `print` and `debug` write to standard error (without it,
    /// they print nothing).
    #[arg(long)]
    pub debug: bool,
}

/// The most records a run may dead-letter or filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// At most this many.
    Count(u64),
    /// At most this share of the records, in percent.
    Percent(f64),
}

impl Limit {
    /// Whether `n` of `total` records is more than the limit allows.
    pub fn exceeded(self, n: u64, total: u64) -> bool {
        match self {
            Limit::Count(max) => n > max,
            Limit::Percent(p) => total > 0 && n as f64 * 100.0 > p * total as f64,
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Count(n) => write!(f, "{n}"),
            Limit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `100` or `2.5%`.
pub(crate) fn parse_limit(s: &str) -> Result<Limit, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a number of records (`100`) or a share (`1%`)");
    match t.strip_suffix('%') {
        Some(p) => {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("`{s}` is not a share between 0% and 100%"));
            }
            Ok(Limit::Percent(p))
        }
        None => t.parse().map(Limit::Count).map_err(|_| bad()),
    }
}

fn parse_duration(s: &str) -> Result<Dur, String> {
    humantime::parse_duration(s)
        .map(Dur)
        .map_err(|e| e.to_string())
}

/// Summary formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFormat {
    /// A table for people.
    Human,
    /// One JSON document on one line.
    Json,
}

/// Runs the pipeline; see the module docs of `cli` for exit codes.
pub fn main(args: &Args) -> i32 {
    execute(args, Mode::Source)
}

/// Runs the pipeline over its source or its DLQ.
pub fn execute(args: &Args, mode: Mode) -> i32 {
    // With a JSON summary, standard error holds only JSON: diagnostics,
    // warnings and errors are JSON log lines too.
    let json = args.summary_format == SummaryFormat::Json;
    if !json {
        crate::logs::human();
    } else if args.debug {
        crate::logs::scripts_as_json();
    }
    let (loaded, mut built) = match load(&args.file, json) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if let Some(b) = Arc::get_mut(&mut built) {
        b.debug = args.debug;
    }
    let rt = match io_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            crate::logs::json("error", &e.to_string());
            return EXIT_RUN_FAILED;
        }
    };
    let p = &loaded.pipeline;
    if mode == Mode::Source
        && p.aggregate.is_some()
        && let Some(why) = p.refusal(crate::sources::RunMode::Run)
    {
        crate::logs::json("error", &why);
        return EXIT_UNREADABLE;
    }
    let aws = ((mode == Mode::Source && p.source.uses_aws()) || p.outputs_use_aws())
        .then(|| Arc::new(rt.block_on(Clients::load(&p.aws, p.retry.attempt_timeout.0))));
    let redrive = match mode {
        Mode::Source => None,
        Mode::Redrive => match super::dlq::prepare(&loaded) {
            Ok(r) => Some(r),
            Err(e) => {
                crate::logs::json("error", &e.to_string());
                return EXIT_UNREADABLE;
            }
        },
    };
    let opened = match &redrive {
        None => rt.block_on(open_source(
            &loaded,
            aws.clone(),
            run_worker(&loaded.pipeline.retry),
        )),
        Some(r) => rt
            .block_on(r.open(aws.clone(), &loaded.pipeline.retry))
            .map(|r| (r, None)),
    };
    let (reader, member) = match opened {
        Ok(r) => r,
        Err(e) => {
            crate::logs::json("error", &e.to_string());
            return EXIT_UNREADABLE;
        }
    };
    if let Some(m) = &member {
        m.keep_leases(rt.handle());
    }
    let dlq_config = match &redrive {
        None => p.dlq.as_sink(),
        Some(r) => r.dlq_sink(),
    };
    let mut outputs = match rt.block_on(open_outputs(&loaded, &dlq_config, mode, aws)) {
        Ok(o) => o,
        Err(e) => {
            // The leases just taken go back to the group at once.
            if let Some(m) = &member {
                rt.block_on(m.leave());
            }
            crate::logs::json("error", &e.to_string());
            return EXIT_UNREADABLE;
        }
    };
    let stopping = Arc::new(AtomicBool::new(false));
    watch_signals(&rt, &stopping);
    let opts = Options {
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        batch_records: args.batch_records,
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        stop: Stop {
            when_idle: args.stop_when_idle.map(|d| d.0),
        },
        stopping: Arc::clone(&stopping),
        live: None,
        json_logs: json,
        max_in_flight_bytes: args.max_in_flight_bytes,
    };
    let report = run::run(built, reader, &mut outputs, &opts, &rt);
    if let Some(m) = &member {
        rt.block_on(m.leave());
    }
    let names: Vec<&str> = loaded.pipeline.sinks.keys().map(String::as_str).collect();
    let calls: Vec<Usage> = outputs
        .sinks
        .iter()
        .zip(&outputs.sink_stats)
        .map(|((n, w), st)| Usage {
            name: n.clone(),
            calls: w.calls(),
            retries: st.retries,
        })
        .chain(std::iter::once(Usage {
            name: "dlq".to_owned(),
            calls: outputs.dlq.calls(),
            retries: outputs.dlq_stats.retries,
        }))
        .collect();
    match args.summary_format {
        SummaryFormat::Human => {
            crate::err!(
                "{}",
                human_summary(
                    &loaded.pipeline.name,
                    &names,
                    &report,
                    &calls,
                    &outputs.reasons,
                    &loaded.lookups.stats()
                )
            )
        }
        SummaryFormat::Json => {
            crate::errln!(
                "{}",
                json_summary(
                    &loaded.pipeline.name,
                    &names,
                    &report,
                    &calls,
                    &outputs.reasons,
                    &loaded.lookups.stats()
                )
            )
        }
    }
    if let Some(e) = &report.error {
        crate::logs::json("error", &format!("the run stopped early: {e}"));
        return EXIT_RUN_FAILED;
    }
    if !report.counts.balanced() {
        crate::logs::json(
            "error",
            "the counts do not add up: some records are not accounted for",
        );
        return EXIT_RUN_FAILED;
    }
    let c = &report.counts;
    let total = c.records_in + c.fanned_out;
    let mut over = false;
    for (limit, n, what, flag) in [
        (
            args.max_dead_letters,
            c.dead_lettered_total(),
            "dead-lettered",
            "--max-dead-letters",
        ),
        (
            args.max_filtered,
            c.filtered + c.dropped_invalid,
            "filtered",
            "--max-filtered",
        ),
    ] {
        if let Some(limit) = limit
            && limit.exceeded(n, total)
        {
            let share = if total > 0 {
                n as f64 * 100.0 / total as f64
            } else {
                0.0
            };
            crate::logs::json(
                "error",
                &format!(
                    "{n} of {total} records were {what} ({share:.1} %), more than `{flag} {limit}` allows"
                ),
            );
            over = true;
        }
    }
    if stopping.load(Ordering::Relaxed) {
        let stopped = "stopped on a signal: every record read was delivered or dead-lettered";
        if json {
            crate::logs::json("info", stopped);
        } else {
            crate::errln!("{stopped}");
        }
        // A finite input that was not read to its end did not finish.
        if !loaded.pipeline.source.is_stream() || redrive.is_some() {
            return EXIT_INTERRUPTED;
        }
    }
    if let Some(r) = &redrive
        && let Err(e) = r.finish()
    {
        crate::logs::json("warn", &e.to_string());
    }
    if over {
        return EXIT_OVER_LIMIT;
    }
    EXIT_OK
}

/// Exit code of a file or stdin run stopped by SIGINT or SIGTERM (128 + SIGINT).
pub(crate) const EXIT_INTERRUPTED: i32 = 130;

/// On SIGINT or SIGTERM, stop reading; what was read is still delivered and acknowledged.
fn watch_signals(rt: &tokio::runtime::Runtime, stopping: &Arc<AtomicBool>) {
    let flag = Arc::clone(stopping);
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    #[cfg(unix)]
    {
        let flag = Arc::clone(stopping);
        rt.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                term.recv().await;
                flag.store(true, Ordering::Relaxed);
            }
        });
    }
}

fn rate(counts: &Counts, report: &Report) -> f64 {
    let secs = report.elapsed.as_secs_f64();
    if secs > 0.0 {
        counts.records_in as f64 / secs
    } else {
        0.0
    }
}

/// What one sink (or the DLQ) asked of its service.
struct Usage {
    name: String,
    /// API requests (0 for local sinks).
    calls: u64,
    /// Writes tried again after a failure.
    retries: u64,
}

fn human_summary(
    name: &str,
    sinks: &[&str],
    report: &Report,
    calls: &[Usage],
    reasons: &Reasons,
    lookups: &[(&str, u64, u64, u64)],
) -> String {
    let c = &report.counts;
    let per_sink = sinks
        .iter()
        .zip(&c.per_sink)
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let stages = Stage::ALL
        .iter()
        .zip(&c.dead_lettered)
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{} {n}", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = format!(
        "pipeline `{name}`: {} record{} in {:.2} s ({:.0} records/s)\n",
        c.records_in,
        if c.records_in == 1 { "" } else { "s" },
        report.elapsed.as_secs_f64(),
        rate(c, report)
    );
    if c.fanned_out > 0 {
        s.push_str(&format!(
            "  fanned out     {:>10}   extra records from transforms\n",
            c.fanned_out
        ));
    }
    s.push_str(&format!(
        "  delivered      {:>10}   {per_sink}\n",
        c.delivered
    ));
    s.push_str(&format!("  filtered       {:>10}\n", c.filtered));
    if c.dropped_invalid > 0 {
        s.push_str(&format!(
            "  dropped        {:>10}   invalid, on_invalid: drop\n",
            c.dropped_invalid
        ));
    }
    s.push_str(&format!(
        "  dead-lettered  {:>10}   {stages}",
        c.dead_lettered_total()
    ));
    while s.ends_with(' ') {
        s.pop();
    }
    s.push('\n');
    for (stage, first) in reasons.by_stage() {
        for (i, reason) in first.iter().enumerate() {
            let label = if i == 0 { stage } else { "" };
            s.push_str(&format!("    {label:<10} {reason}\n"));
        }
    }
    s.push_str(&format!("  unrouted       {:>10}\n", c.unrouted));
    if c.deduplicated > 0 {
        s.push_str(&format!(
            "  deduplicated   {:>10}   their key was delivered before\n",
            c.deduplicated
        ));
    }
    if c.aggregated > 0 || c.aggregates_out > 0 {
        s.push_str(&format!(
            "  aggregated     {:>10}   into windows only; {} records made by the aggregate\n",
            c.aggregated, c.aggregates_out
        ));
    }
    if c.failed > 0 {
        s.push_str(&format!(
            "  not delivered  {:>10}   a sink or the DLQ did not take them\n",
            c.failed
        ));
    }
    for (table, hits, misses, calls) in lookups {
        s.push_str(&format!(
            "  lookup {table:<19}{hits} from the cache, {misses} not, {calls} calls\n"
        ));
    }
    for (label, of) in [
        ("api calls", (|u: &Usage| u.calls) as fn(&Usage) -> u64),
        ("retries", |u: &Usage| u.retries),
    ] {
        let used: Vec<String> = calls
            .iter()
            .filter(|u| of(u) > 0)
            .map(|u| format!("{} {}", u.name, of(u)))
            .collect();
        if !used.is_empty() {
            s.push_str(&format!("  {label:<26}{}\n", used.join(", ")));
        }
    }
    s
}

/// The process's peak resident memory (Linux: `VmHWM`), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn json_summary(
    name: &str,
    sinks: &[&str],
    report: &Report,
    calls: &[Usage],
    reasons: &Reasons,
    lookups: &[(&str, u64, u64, u64)],
) -> String {
    let c = &report.counts;
    let mut dl = serde_json::Map::new();
    dl.insert("total".into(), json!(c.dead_lettered_total()));
    for (s, n) in Stage::ALL.iter().zip(&c.dead_lettered) {
        dl.insert(s.as_str().into(), json!(n));
    }
    let per_sink: serde_json::Map<String, serde_json::Value> = sinks
        .iter()
        .zip(&c.per_sink)
        .map(|(n, v)| ((*n).to_owned(), json!(v)))
        .collect();
    json!({
        "pipeline": name,
        "records_in": c.records_in,
        "fanned_out": c.fanned_out,
        "delivered": c.delivered,
        "sinks": per_sink,
        "filtered": c.filtered,
        "dropped_invalid": c.dropped_invalid,
        "dead_lettered": dl,
        "first_reasons": reasons.by_stage().into_iter().map(|(s, r)| (s.to_owned(), json!(r))).collect::<serde_json::Map<String, serde_json::Value>>(),
        "unrouted": c.unrouted,
        "deduplicated": c.deduplicated,
        "aggregated": c.aggregated,
        "aggregates_out": c.aggregates_out,
        "lookups": lookups.iter().map(|(t, hits, misses, calls)| ((*t).to_owned(), json!({"hits": hits, "misses": misses, "calls": calls}))).collect::<serde_json::Map<String, serde_json::Value>>(),
        "failed": c.failed,
        "balanced": c.balanced(),
        "elapsed_ms": report.elapsed.as_millis() as u64,
        "records_per_s": rate(c, report).round() as u64,
        "api_calls": calls.iter().map(|u| (u.name.clone(), json!(u.calls))).collect::<serde_json::Map<String, serde_json::Value>>(),
        "retries": calls.iter().map(|u| (u.name.clone(), json!(u.retries))).collect::<serde_json::Map<String, serde_json::Value>>(),
        "error": report.error.as_ref().map(ToString::to_string),
        "max_in_flight_bytes": report.peak_in_flight_bytes,
        "peak_rss_bytes": peak_rss_bytes(),
    })
    .to_string()
}
