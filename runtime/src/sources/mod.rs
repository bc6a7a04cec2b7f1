//! Sources: where records come from.
//!
//! Each source type is one module whose `Config` implements [`Source`]:
//! the modes that read it, its checks, how `sluice run` and `sluice daemon`
//! open its reader, and (for Lambda mode) its event decoder. The `sources!`
//! list below registers each with one line and makes the `type`-tagged
//! [`Config`] the pipeline format accepts. A source yields
//! [`RawRecord`](crate::record::RawRecord)s in batches; it knows nothing of
//! decoding, scripts or sinks.

pub mod dlq;
pub mod event;
pub mod lines;
pub mod shards;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use serde_json::Value;

use crate::aws::Clients;
use crate::aws::sam::Fragment;
use crate::delivery::{Error, Policy};
use crate::diagnostics::Findings;
use crate::record::RawRecord;
pub use event::EventSource;
use lines::LineReader;
use shards::group::Member;
use shards::lease::Settings;

/// A source's config: what the pipeline format reads under `source`, and
/// everything the rest of Sluice asks of it. Implemented once per source
/// module.
pub trait Source {
    /// The modes that read the source: the table of `docs/sources.md`.
    const MODES: &'static [RunMode];

    /// Lambda mode: how its events become records and how they are
    /// answered; `None` when no event source mapping delivers it.
    const EVENTS: Option<&'static dyn EventSource> = None;

    /// Whether the invocation is answered with the records themselves (a
    /// Firehose data-transformation function): the pipeline then routes
    /// every record to the one sink that [`answers`](crate::sinks::Sink::answers).
    const ANSWERED_BY_SINK: bool = false;

    /// What to use instead, added to the refusal of a mode that does not
    /// read the source.
    fn refusal_hint(&self) -> &'static str {
        ""
    }

    /// Whether the source talks to AWS (under `sluice run` and `sluice daemon`).
    fn uses_aws(&self) -> bool {
        true
    }

    /// Whether the source is a stream (runs until stopped) rather than a finite input.
    fn is_stream(&self) -> bool {
        true
    }

    /// Problems with the config that its shape does not show.
    fn check(&self, _findings: &mut Findings) {}

    /// `sluice deploy template`: the function's event (source mapping) and
    /// what goes with it. Only called for a source Lambda mode reads.
    fn lambda_template(&self, _pipeline: &str, _t: &mut Fragment) -> Result<(), String> {
        Err("it has no event source mapping".to_owned())
    }

    /// `sluice deploy ecs`: what the task needs to read the source. Only
    /// called for a source `sluice daemon` reads.
    fn daemon_permissions(&self) -> Vec<Value> {
        Vec::new()
    }

    /// `sluice run` and `sluice daemon`: opens the reader (a stream of
    /// shards as a member of the pipeline's worker group, returned too).
    fn open(
        &self,
        _cx: OpenCx<'_>,
    ) -> impl Future<Output = Result<(Reader, Option<Member>), Error>> + Send {
        std::future::ready(Err(Error::fatal("this source has no reader")))
    }
}

/// What a reader needs to start.
pub struct OpenCx<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// Resolves paths against the pipeline's folder.
    pub resolve: &'a (dyn Fn(&str) -> std::path::PathBuf + Sync),
    /// The shared AWS clients, when the source uses AWS.
    pub aws: Option<Arc<Clients>>,
    /// How this process takes part in a stream's worker group.
    pub worker: Settings,
}

impl OpenCx<'_> {
    /// The AWS clients (an AWS source is only opened with them).
    pub fn aws(&self) -> Result<Arc<Clients>, Error> {
        self.aws
            .clone()
            .ok_or_else(|| Error::fatal("no AWS clients"))
    }
}

/// The refusal hint of a source that only `sluice run` reads.
pub(crate) const READ_A_STREAM: &str =
    "; a service or a function reads a stream: `sqs`, `kinesis` or `dynamodb_streams`";

/// The registration list: each line is one source, `Variant(module) =
/// "type"` with its one-line description (the JSON Schema's and the
/// reference's). A new source is its module plus one line here.
macro_rules! sources {
    ($( $(#[doc = $doc:literal])* $Variant:ident($module:ident) = $name:literal, )*) => {
        $( pub mod $module; )*

        /// Where the pipeline reads records from.
        #[derive(Debug, Clone, Deserialize, JsonSchema)]
        #[serde(tag = "type")]
        #[schemars(rename = "Source")]
        pub enum Config {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $Variant($module::Config), )*
        }

        /// Every source's `type`, in registration order.
        pub const TYPES: &[&str] = &[$( $name ),*];

        /// Every source's Lambda event decoder, by `type`.
        pub const EVENTS: &[(&str, Option<&'static dyn EventSource>)] =
            &[$( ($name, <$module::Config as Source>::EVENTS), )*];

        impl Config {
            /// The `type` name of the source.
            pub fn type_name(&self) -> &'static str {
                match self { $( Config::$Variant(_) => $name, )* }
            }

            /// The modes that read the source: the table of `docs/sources.md`.
            pub fn modes(&self) -> &'static [RunMode] {
                match self { $( Config::$Variant(_) => <$module::Config as Source>::MODES, )* }
            }

            /// Whether the invocation is answered with the records (see [`Source::ANSWERED_BY_SINK`]).
            pub fn answered_by_sink(&self) -> bool {
                match self { $( Config::$Variant(_) => <$module::Config as Source>::ANSWERED_BY_SINK, )* }
            }

            /// Lambda mode's decoder of the source's events.
            pub fn events(&self) -> Option<&'static dyn EventSource> {
                match self { $( Config::$Variant(_) => <$module::Config as Source>::EVENTS, )* }
            }

            fn source(&self) -> &dyn SourceInfo {
                match self { $( Config::$Variant(c) => c, )* }
            }

            /// Opens the reader of `sluice run` and `sluice daemon`.
            pub async fn open(&self, cx: OpenCx<'_>) -> Result<(Reader, Option<Member>), Error> {
                // A source only Lambda mode reads has no reader.
                if self.modes() == [RunMode::Lambda] {
                    return Err(Error::fatal(self.refusal(RunMode::Run).unwrap_or_default()));
                }
                match self { $( Config::$Variant(c) => c.open(cx).await, )* }
            }
        }
    };
}

sources! {
    /// Read a local file, one record per line.
    File(file) = "file",
    /// Read standard input, one record per line.
    Stdin(stdin) = "stdin",
    /// Read messages from an Amazon SQS queue; each is deleted once delivered.
    Sqs(sqs) = "sqs",
    /// Read every shard of an Amazon Kinesis data stream, with checkpoints in DynamoDB.
    Kinesis(kinesis) = "kinesis",
    /// Read the change records of a DynamoDB table, with checkpoints in DynamoDB.
    DynamodbStreams(dynamodb_streams) = "dynamodb_streams",
    /// Records of a Kafka topic (Amazon MSK or self-managed), delivered by a
    /// Lambda event source mapping; only Lambda mode reads it.
    Kafka(kafka) = "kafka",
    /// Records of an Amazon Data Firehose delivery stream, given to a
    /// data-transformation function; only Lambda mode reads it.
    Firehose(firehose) = "firehose",
}

/// The parts of [`Source`] that dispatch by reference.
trait SourceInfo {
    fn refusal_hint(&self) -> &'static str;
    fn uses_aws(&self) -> bool;
    fn is_stream(&self) -> bool;
    fn check(&self, findings: &mut Findings);
    fn lambda_template(&self, pipeline: &str, t: &mut Fragment) -> Result<(), String>;
    fn daemon_permissions(&self) -> Vec<Value>;
}

impl<S: Source> SourceInfo for S {
    fn refusal_hint(&self) -> &'static str {
        Source::refusal_hint(self)
    }
    fn uses_aws(&self) -> bool {
        Source::uses_aws(self)
    }
    fn is_stream(&self) -> bool {
        Source::is_stream(self)
    }
    fn check(&self, findings: &mut Findings) {
        Source::check(self, findings)
    }
    fn lambda_template(&self, pipeline: &str, t: &mut Fragment) -> Result<(), String> {
        Source::lambda_template(self, pipeline, t)
    }
    fn daemon_permissions(&self) -> Vec<Value> {
        Source::daemon_permissions(self)
    }
}

impl Config {
    /// Why `mode` does not read the source, in the words of the table of
    /// `docs/sources.md`; `None` when it does.
    pub fn refusal(&self, mode: RunMode) -> Option<String> {
        let modes = self.modes();
        if modes.contains(&mode) {
            return None;
        }
        let names: Vec<&str> = modes.iter().map(|m| m.name()).collect();
        let read_by = match names.as_slice() {
            [one] => format!("{one} only"),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
            [] => "no mode".to_owned(),
        };
        Some(format!(
            "a `{}` source is read by {read_by}, not by {}{}",
            self.type_name(),
            mode.name(),
            self.source().refusal_hint()
        ))
    }

    /// Whether the source talks to AWS.
    pub fn uses_aws(&self) -> bool {
        self.source().uses_aws()
    }

    /// Whether the source is a stream (runs until stopped) rather than a finite input.
    pub fn is_stream(&self) -> bool {
        self.source().is_stream()
    }

    /// The source's part of the Lambda template, or why there is none.
    pub fn lambda_template(&self, pipeline: &str) -> Result<Fragment, String> {
        if let Some(why) = self.refusal(RunMode::Lambda) {
            return Err(why);
        }
        let mut t = Fragment::default();
        self.source().lambda_template(pipeline, &mut t)?;
        Ok(t)
    }

    /// What a `sluice daemon` task needs to read the source, or why it cannot.
    pub fn daemon_permissions(&self) -> Result<Vec<Value>, String> {
        match self.refusal(RunMode::Daemon) {
            Some(why) => Err(why),
            None => Ok(self.source().daemon_permissions()),
        }
    }

    /// The source's own checks (see [`Source::check`]).
    pub fn check(&self) -> Findings {
        let mut findings = Findings::default();
        self.source().check(&mut findings);
        findings
    }
}

/// A way to run a pipeline; each source is read by some of them
/// ([`Config::modes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// `sluice run`: one process, until the input ends (or, for a stream,
    /// until stopped or idle).
    Run,
    /// `sluice daemon`: a service whose workers share a stream.
    Daemon,
    /// Lambda mode: a function invoked by an event source mapping.
    Lambda,
}

impl RunMode {
    /// Every mode.
    pub const ALL: [RunMode; 3] = [RunMode::Run, RunMode::Daemon, RunMode::Lambda];

    /// The mode as the docs name it.
    pub fn name(self) -> &'static str {
        match self {
            RunMode::Run => "`sluice run`",
            RunMode::Daemon => "`sluice daemon`",
            RunMode::Lambda => "Lambda mode",
        }
    }
}

/// What acknowledges a batch to its source once it is delivered.
#[derive(Default)]
pub enum Ack {
    /// Nothing to do (files, standard input).
    #[default]
    None,
    /// Delete the batch's SQS messages.
    Sqs(sqs::Receipts, Arc<Clients>),
    /// Checkpoint the batch's shard (Kinesis or DynamoDB Streams).
    Kinesis(shards::Checkpoint, Arc<Clients>),
    /// Delete an S3 object whose records were all redriven.
    S3Delete {
        /// The bucket.
        bucket: String,
        /// The object.
        key: String,
        /// The clients.
        aws: Arc<Clients>,
    },
}

impl Ack {
    /// The shard checkpoint this acknowledgement saves, if it is one.
    pub fn checkpoint(&self) -> Option<&shards::Checkpoint> {
        match self {
            Ack::Kinesis(cp, _) => Some(cp),
            _ => None,
        }
    }

    /// [`checkpoint`](Self::checkpoint), to change.
    pub fn checkpoint_mut(&mut self) -> Option<&mut shards::Checkpoint> {
        match self {
            Ack::Kinesis(cp, _) => Some(cp),
            _ => None,
        }
    }

    /// Acknowledges. An error means the records will be delivered again (a duplicate, not a loss).
    /// Each call is retried with `retry`.
    pub async fn apply(&self, retry: &Policy) -> Result<(), Error> {
        match self {
            Ack::None => Ok(()),
            Ack::Sqs(receipts, aws) => receipts.delete(aws, retry).await,
            Ack::Kinesis(checkpoint, aws) => checkpoint.save(aws, retry).await,
            Ack::S3Delete { bucket, key, aws } => {
                let req = aws.s3().delete_object().bucket(bucket).key(key);
                retry
                    .send(&format!("delete_object of `{key}`"), || req.clone().send())
                    .await
                    .map(|_| ())
            }
        }
    }
}

/// Reads a stream source until it yields a batch, the run is stopping, or
/// the stream has been idle for `stop.when_idle`.
pub struct Poll<'a> {
    /// When the source stops by itself.
    pub stop: Stop,
    /// Whether the run is stopping (a signal, or the writer stopped).
    pub stopping: &'a dyn Fn() -> bool,
    /// Batches read and not yet acknowledged.
    pub in_flight: &'a dyn Fn() -> usize,
    /// Asks for the sinks' buffers to be written once every batch read is
    /// committed (the source is idle).
    pub request_flush: &'a dyn Fn(),
    /// Asks for the sinks' buffers to be written at once: a shard being
    /// handed over waits for its checkpoint.
    pub flush_now: &'a dyn Fn(),
}

impl Poll<'_> {
    /// Calls `read` until it returns a batch. Idle means: nothing arrived for
    /// `when_idle` while no batch was waiting to be acknowledged (a FIFO queue
    /// holds back a message group until its in-flight messages are deleted).
    /// When nothing arrived for `when_idle` but batches still wait, it asks
    /// for the sinks' buffers to be written so they can be acknowledged.
    fn run<T>(
        &self,
        wait: Option<Duration>,
        mut read: impl FnMut() -> Result<Option<T>, Error>,
    ) -> Result<Option<T>, Error> {
        let started = Instant::now();
        let mut idle_since = started;
        loop {
            if (self.stopping)() {
                return Ok(None);
            }
            let settled = (self.in_flight)() == 0;
            if !settled {
                idle_since = Instant::now();
            }
            if let Some(batch) = read()? {
                return Ok(Some(batch));
            }
            if let Some(idle) = self.stop.when_idle {
                if settled && idle_since.elapsed() >= idle {
                    return Ok(None);
                }
                if !settled && started.elapsed() >= idle {
                    (self.request_flush)();
                }
            }
            if let Some(wait) = wait {
                std::thread::sleep(wait);
            }
        }
    }
}

/// A running source.
pub enum Reader {
    /// A file or standard input.
    Lines(LineReader),
    /// An SQS queue.
    Sqs(sqs::Reader, Arc<Clients>),
    /// A Kinesis data stream.
    Kinesis(kinesis::Reader, Arc<Clients>),
    /// A DynamoDB table's stream.
    DynamodbStreams(dynamodb_streams::Reader, Arc<Clients>),
    /// The dead-letter queue, read back by `sluice dlq redrive`.
    Dlq(dlq::Reader),
}

/// When a stream source stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stop {
    /// Stop once no record arrived for this long.
    pub when_idle: Option<Duration>,
}

impl Reader {
    /// The next batch of up to `max` records (a line source also stops at
    /// `max_bytes`; the others' batches are bounded by their APIs) and its
    /// acknowledgement; `None`
    /// at the end of the input (end of file; for streams, idle for `stop.when_idle`).
    pub fn next_batch(
        &mut self,
        max: usize,
        max_bytes: u64,
        rt: &tokio::runtime::Handle,
        policy: &Policy,
        poll: &Poll<'_>,
    ) -> Result<Option<(Vec<RawRecord>, Ack)>, Error> {
        match self {
            Reader::Lines(r) => {
                let batch = r
                    .next_batch(max, max_bytes)
                    .map_err(|e| Error::fatal(e.to_string()))?;
                Ok((!batch.is_empty()).then_some((batch, Ack::None)))
            }
            Reader::Kinesis(r, aws) => read_shards(r, aws, max, rt, policy, poll),
            Reader::DynamodbStreams(r, aws) => read_shards(r, aws, max, rt, policy, poll),
            Reader::Dlq(r) => rt.block_on(r.next_batch(max, max_bytes, policy)),
            // A receive long-polls by itself: no wait between calls.
            Reader::Sqs(r, aws) => poll.run(None, || {
                let (records, receipts) = rt.block_on(r.receive(max, policy))?;
                Ok((!records.is_empty()).then(|| (records, Ack::Sqs(receipts, Arc::clone(aws)))))
            }),
        }
    }
}

/// The next batch of a stream source. While a shard handed over waits for
/// its checkpoint, the sinks are asked to write their buffers at once.
fn read_shards<A: shards::ShardApi>(
    r: &mut shards::ShardReader<A>,
    aws: &Arc<Clients>,
    max: usize,
    rt: &tokio::runtime::Handle,
    policy: &Policy,
    poll: &Poll<'_>,
) -> Result<Option<(Vec<RawRecord>, Ack)>, Error> {
    poll.run(Some(r.poll_interval()), || {
        let read = rt.block_on(r.read(max, policy))?;
        if r.lag().awaits_checkpoint() {
            (poll.flush_now)();
        }
        Ok(read.map(|(records, cp)| (records, Ack::Kinesis(cp, Arc::clone(aws)))))
    })
}

/// Default largest record a line source accepts: 10 MiB.
pub fn default_max_record_bytes() -> u64 {
    10 * 1024 * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(v: serde_json::Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_source_is_refused_by_the_modes_that_do_not_read_it_in_the_tables_words() {
        use serde_json::json;
        let file = source(json!({ "type": "file", "path": "in.jsonl" }));
        let sqs = source(json!({ "type": "sqs", "queue": "in" }));
        let kafka = source(
            json!({ "type": "kafka", "topic": "orders", "cluster_arn": "arn:aws:kafka:us-east-1:1:cluster/c/x" }),
        );
        assert_eq!(file.refusal(RunMode::Run), None);
        assert_eq!(
            file.refusal(RunMode::Daemon).as_deref(),
            Some(
                "a `file` source is read by `sluice run` only, not by `sluice daemon`; a service or a function reads a stream: `sqs`, `kinesis` or `dynamodb_streams`"
            )
        );
        assert_eq!(
            file.refusal(RunMode::Lambda).as_deref(),
            Some(
                "a `file` source is read by `sluice run` only, not by Lambda mode; a service or a function reads a stream: `sqs`, `kinesis` or `dynamodb_streams`"
            )
        );
        for mode in RunMode::ALL {
            assert_eq!(sqs.refusal(mode), None);
        }
        assert_eq!(kafka.refusal(RunMode::Lambda), None);
        assert_eq!(
            kafka.refusal(RunMode::Run).as_deref(),
            Some(
                "a `kafka` source is read by Lambda mode only, not by `sluice run` (a Lambda event source mapping reads the topic): deploy it with `sluice deploy template`, or try it with `sluice test`"
            )
        );
    }
}
