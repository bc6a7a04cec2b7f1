//! Sinks: where delivered records go.
//!
//! Each sink type is one module with a `Config` (implementing [`Sink`]: its
//! checks, key fields, IAM permissions, how it opens) and a `Writer`
//! (implementing [`Write`]), registered by one line of the `sinks!` list
//! below, which makes the `type`-tagged [`Config`] the pipeline format
//! accepts and the [`Writer`] enum of running sinks, dispatched statically.
//! A writer receives encoded records (one compact JSON document each, plus
//! the record fields its config asked for) and answers, per record, whether
//! it durably accepted it; it never decides about retries or the
//! dead-letter queue (that is `delivery`'s job).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, Policy};
use crate::diagnostics::Findings;
pub use crate::record::OutRecord;
use crate::record::Returned;

/// A sink's config: what the pipeline format reads under `sinks.NAME`, and
/// everything the rest of Sluice asks of it. Implemented once per sink
/// module; the defaults fit a sink that needs none of it.
pub trait Sink {
    /// The running sink.
    type Writer: Write;

    /// Record fields (dotted paths) the sink needs besides the JSON
    /// document, extracted once per record by the engine.
    fn key_fields(&self) -> Vec<String> {
        Vec::new()
    }

    /// The sink's own retry policy, when it has one.
    fn retry(&self) -> Option<&Policy> {
        None
    }

    /// Whether the sink talks to AWS.
    fn uses_aws(&self) -> bool {
        true
    }

    /// Whether the sink's records are the answer of the Lambda invocation
    /// (the records a Firehose data-transformation function returns).
    fn answers(&self) -> bool {
        false
    }

    /// A record as the answer gives it (only asked of a sink that
    /// [`answers`](Self::answers)): its bytes and named values.
    fn answer(&self, json: &[u8], _keys: &[String]) -> Returned {
        Returned {
            data: json.to_vec(),
            ..Returned::default()
        }
    }

    /// Problems with the config that its shape does not show (fields that
    /// go together, what the rest of the pipeline rules out).
    fn check(&self, _cx: &CheckCx<'_>, _findings: &mut Findings) {}

    /// The IAM statements it needs in pipeline `pipeline` (CloudFormation
    /// values, see [`crate::aws::iam`]).
    fn permissions(&self, _pipeline: &str) -> Vec<Value> {
        Vec::new()
    }

    /// Whether it writes to the machine it runs on: what it holds would be
    /// lost with a Lambda execution environment or an ECS task, so the
    /// deploy templates refuse it.
    fn writes_locally(&self) -> bool {
        false
    }

    /// As the dead-letter queue, the resource a deploy template creates for
    /// it (kept when the stack is deleted): its logical id and definition.
    fn dlq_resource(&self) -> Option<(&'static str, Value)> {
        None
    }

    /// The sink as `sluice dlq redrive` opens it, when it differs: a redrive
    /// adds to what the sink holds, so a sink that starts afresh on each run
    /// (a file written anew) keeps what it holds instead.
    fn for_redrive(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// Starts the sink.
    fn open(&self, cx: &BuildCx<'_>) -> impl Future<Output = Result<Self::Writer, Error>> + Send;
}

/// A running sink. It receives encoded records and answers, per record,
/// whether it durably accepted it; it never decides about retries or the
/// dead-letter queue (that is `delivery`'s job).
pub trait Write {
    /// Writes records; one result per record, in order. `Ok` means durably
    /// accepted (local sinks: once [`flush`](Self::flush) returns).
    fn send(
        &mut self,
        records: &[OutRecord<'_>],
    ) -> impl Future<Output = Vec<Result<(), Error>>> + Send;

    /// API requests made so far (0 for local sinks).
    fn calls(&self) -> u64 {
        0
    }

    /// Makes everything accepted so far durable.
    fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Ok(()))
    }

    /// How the engine buffers this sink's records across batches, if it does.
    fn buffering(&self) -> Option<BufferLimits> {
        None
    }
}

/// The registration list: each line is one sink, `Variant(module) = "type"`
/// with its one-line description (the JSON Schema's and the reference's).
/// It makes the [`Config`] and [`Writer`] enums and their dispatch; a new
/// sink is its module plus one line here.
macro_rules! sinks {
    ($( $(#[doc = $doc:literal])* $Variant:ident($module:ident) = $name:literal, )*) => {
        $( pub mod $module; )*

        /// A destination for records.
        #[derive(Debug, Clone, Deserialize, JsonSchema)]
        #[serde(tag = "type")]
        #[schemars(rename = "Sink")]
        pub enum Config {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $Variant($module::Config), )*
        }

        /// A running sink.
        pub enum Writer {
            $( $(#[doc = $doc])* $Variant(<$module::Config as Sink>::Writer), )*
        }

        /// Every sink's `type`, in registration order.
        pub const TYPES: &[&str] = &[$( $name ),*];

        impl Config {
            /// The `type` name of the sink.
            pub fn type_name(&self) -> &'static str {
                match self { $( Config::$Variant(_) => $name, )* }
            }

            fn sink(&self) -> &dyn SinkInfo {
                match self { $( Config::$Variant(c) => c, )* }
            }

            /// The sink as `sluice dlq redrive` opens it (see [`Sink::for_redrive`]).
            pub fn for_redrive(&self) -> Config {
                match self {
                    $( Config::$Variant(c) => c.for_redrive().map_or_else(|| self.clone(), Config::$Variant), )*
                }
            }

            /// Starts the sink described by the config.
            pub async fn open(&self, cx: &BuildCx<'_>) -> Result<Writer, Error> {
                Ok(match self { $( Config::$Variant(c) => Writer::$Variant(c.open(cx).await?), )* })
            }
        }

        impl Writer {
            /// Writes records; one result per record, in order. `Ok` means durably
            /// accepted (file sinks: once [`flush`](Self::flush) returns).
            pub async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
                #[cfg(feature = "fault-injection")]
                if !matches!(self, Writer::File(_) | Writer::Stdout(_)) {
                    records.iter().for_each(|r| crate::faults::sink_write(r.json));
                }
                match self { $( Writer::$Variant(w) => w.send(records).await, )* }
            }

            /// How the engine buffers this sink's records across batches, if it does.
            pub fn buffering(&self) -> Option<BufferLimits> {
                match self { $( Writer::$Variant(w) => w.buffering(), )* }
            }

            /// API requests made so far (0 for local sinks).
            pub fn calls(&self) -> u64 {
                match self { $( Writer::$Variant(w) => w.calls(), )* }
            }

            /// Makes everything accepted so far durable.
            pub async fn flush(&mut self) -> Result<(), Error> {
                match self { $( Writer::$Variant(w) => w.flush().await, )* }
            }
        }
    };
}

sinks! {
    /// Write JSON Lines to a local file.
    File(file) = "file",
    /// Write JSON Lines to standard output.
    Stdout(stdout) = "stdout",
    /// Write JSON Lines objects to Amazon S3.
    S3(s3) = "s3",
    /// Send each record as a message to Amazon SQS.
    Sqs(sqs) = "sqs",
    /// Write each record to an Amazon DynamoDB table (an item, or counters added to one).
    Dynamodb(dynamodb) = "dynamodb",
    /// Write each record to an Amazon Kinesis data stream.
    Kinesis(kinesis) = "kinesis",
    /// Send each record to an Amazon Data Firehose delivery stream.
    Firehose(firehose) = "firehose",
    /// Return each record to the Firehose delivery stream that invoked the function.
    FirehoseResponse(firehose_response) = "firehose_response",
}

/// The DLQ's configs.
pub mod dlq;
pub use dlq::DlqConfig;

impl crate::delivery::Target for Writer {
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        Writer::send(self, records).await
    }
}

/// The parts of [`Sink`] that need no writer type, for dispatch by reference.
trait SinkInfo {
    fn key_fields(&self) -> Vec<String>;
    fn retry(&self) -> Option<&Policy>;
    fn uses_aws(&self) -> bool;
    fn answers(&self) -> bool;
    fn answer(&self, json: &[u8], keys: &[String]) -> Returned;
    fn check(&self, cx: &CheckCx<'_>, findings: &mut Findings);
    fn permissions(&self, pipeline: &str) -> Vec<Value>;
    fn writes_locally(&self) -> bool;
    fn dlq_resource(&self) -> Option<(&'static str, Value)>;
}

impl<S: Sink> SinkInfo for S {
    fn key_fields(&self) -> Vec<String> {
        Sink::key_fields(self)
    }
    fn retry(&self) -> Option<&Policy> {
        Sink::retry(self)
    }
    fn uses_aws(&self) -> bool {
        Sink::uses_aws(self)
    }
    fn answers(&self) -> bool {
        Sink::answers(self)
    }
    fn answer(&self, json: &[u8], keys: &[String]) -> Returned {
        Sink::answer(self, json, keys)
    }
    fn check(&self, cx: &CheckCx<'_>, findings: &mut Findings) {
        Sink::check(self, cx, findings)
    }
    fn permissions(&self, pipeline: &str) -> Vec<Value> {
        Sink::permissions(self, pipeline)
    }
    fn writes_locally(&self) -> bool {
        Sink::writes_locally(self)
    }
    fn dlq_resource(&self) -> Option<(&'static str, Value)> {
        Sink::dlq_resource(self)
    }
}

impl Config {
    /// Record fields (dotted paths) the sink needs besides the JSON document,
    /// extracted once per record by the engine.
    pub fn key_fields(&self) -> Vec<String> {
        self.sink().key_fields()
    }

    /// The sink's own retry policy, when it has one.
    pub fn retry(&self) -> Option<&Policy> {
        self.sink().retry()
    }

    /// Whether the sink talks to AWS.
    pub fn uses_aws(&self) -> bool {
        self.sink().uses_aws()
    }

    /// Whether the sink's records are the answer of the Lambda invocation.
    pub fn answers(&self) -> bool {
        self.sink().answers()
    }

    /// A record as the answer gives it (see [`Sink::answer`]); its `item` is 0.
    pub fn answer(&self, json: &[u8], keys: &[String]) -> Returned {
        self.sink().answer(json, keys)
    }

    /// The sink's own checks (see [`Sink::check`]).
    pub fn check(&self, cx: &CheckCx<'_>) -> Findings {
        let mut findings = Findings::default();
        self.sink().check(cx, &mut findings);
        findings
    }

    /// The IAM statements the sink needs.
    pub fn permissions(&self, pipeline: &str) -> Vec<Value> {
        self.sink().permissions(pipeline)
    }

    /// Whether it writes to the machine it runs on (see [`Sink::writes_locally`]).
    pub fn writes_locally(&self) -> bool {
        self.sink().writes_locally()
    }

    /// As the DLQ, the resource a deploy template creates for it.
    pub fn dlq_resource(&self) -> Option<(&'static str, Value)> {
        self.sink().dlq_resource()
    }
}

/// What a sink's check knows of the rest of the pipeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckCx<'a> {
    /// Whether the sink is the dead-letter queue.
    pub dlq: bool,
    /// The pipeline's source `type`.
    pub source: &'a str,
}

/// When a buffering sink writes what it holds (the engine holds its
/// records, and their batches' acknowledgements, until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// Write once this many records are held.
    pub max_records: usize,
    /// Write once this many bytes are held.
    pub max_bytes: usize,
    /// Write once the oldest held record waited this long.
    pub max_age: Duration,
}

/// What a writer needs to start.
pub struct BuildCx<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// Resolves paths against the pipeline's folder.
    pub resolve: &'a (dyn Fn(&str) -> std::path::PathBuf + Sync),
    /// The shared AWS clients, when the pipeline uses AWS.
    pub aws: Option<Arc<Clients>>,
    /// How the calls that open a sink are retried (the pipeline's `retry`).
    pub retry: &'a Policy,
}

impl BuildCx<'_> {
    /// The AWS clients (an AWS sink is only opened with them).
    pub fn aws(&self) -> Result<Arc<Clients>, Error> {
        self.aws
            .clone()
            .ok_or_else(|| Error::fatal("no AWS clients"))
    }
}

/// Splits items, given as (index, size) in order, into the calls of a batch
/// API: at most `max_records` items and `max_bytes` bytes a call, order kept.
pub(crate) fn calls_of(
    items: impl IntoIterator<Item = (usize, usize)>,
    max_records: usize,
    max_bytes: usize,
) -> Vec<Vec<usize>> {
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, size) in items {
        match calls.last_mut() {
            Some(call) if call.len() < max_records && bytes + size <= max_bytes => {
                call.push(i);
                bytes += size;
            }
            _ => {
                calls.push(vec![i]);
                bytes = size;
            }
        }
    }
    calls
}

/// How a batch API answered an accepted call, entry by entry: an entry's
/// error code and message, `None` for an entry it accepted.
pub(crate) type EntryErrors<'a> = Vec<Option<(&'a str, Option<&'a str>)>>;

/// Writes the outcome of one call of a batch API (Kinesis `PutRecords`,
/// Firehose `PutRecordBatch`) into `results`, at the indexes of `batch`: a
/// failed call fails each of its records alike; an accepted one fails the
/// entries it answered with an error code (`entries`, in order: each one's
/// code and message, `None` when accepted), classified by `class`. Only
/// those are sent again.
pub(crate) fn settle_batch<'a>(
    what: &str,
    batch: &[usize],
    entries: Result<EntryErrors<'a>, Error>,
    class: fn(&str) -> ErrorClass,
    results: &mut [Result<(), Error>],
) {
    match entries {
        Ok(entries) => {
            for (&i, entry) in batch.iter().zip(entries) {
                if let Some((code, message)) = entry {
                    results[i] = Err(Error::new(
                        class(code),
                        format!(
                            "{what}: record rejected: {code} {}",
                            message.unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        Err(err) => {
            for &i in batch {
                results[i] = Err(err.clone());
            }
        }
    }
}

/// Writes records as JSON Lines to a local writer; one outcome per record.
fn write_lines(
    out: &mut impl std::io::Write,
    records: &[OutRecord<'_>],
    what: &str,
) -> Vec<Result<(), Error>> {
    let mut results: Vec<Result<(), Error>> = records
        .iter()
        .map(|r| {
            // A panic here is kept to its record (see `delivery` for remote sinks).
            crate::panics::catch(|| {
                #[cfg(feature = "fault-injection")]
                crate::faults::sink_write(r.json);
                out.write_all(r.json)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| crate::delivery::error::classify_io(what, &e))
            })
            .unwrap_or_else(|m| {
                Err(Error::new(
                    crate::delivery::ErrorClass::Poison,
                    format!("internal error while writing the record: {m}"),
                ))
            })
        })
        .collect();
    // What is still buffered is written now, so that a full disk fails these
    // records rather than a later sync that no record answers for.
    if let Err(e) = out.flush() {
        let e = crate::delivery::error::classify_io(what, &e);
        for r in &mut results {
            if r.is_ok() {
                *r = Err(e.clone());
            }
        }
    }
    results
}

/// Reads a dotted path (`customer.id`) of a JSON-like Rhai record as text:
/// strings as they are, other values as JSON, missing as empty.
pub fn field_text(record: &rhai::Dynamic, path: &str) -> String {
    // Read where it is: the record is not copied for each field.
    fn walk<'p>(v: &rhai::Dynamic, mut parts: impl Iterator<Item = &'p str>) -> String {
        match parts.next() {
            Some(part) => match v
                .read_lock::<rhai::Map>()
                .as_deref()
                .and_then(|m| m.get(part))
            {
                Some(next) => walk(next, parts),
                None => String::new(),
            },
            None if v.is_string() => v.clone().into_string().unwrap_or_default(),
            None if v.is_unit() => String::new(),
            None => serde_json::to_string(v).unwrap_or_default(),
        }
    }
    if path.is_empty() {
        return walk(record, std::iter::empty());
    }
    walk(record, path.split('.'))
}

/// [`field_text`] of a parsed record (an object) with the fields `written`
/// over it, without building it into a Rhai map.
pub fn tree_field_text(
    root: crate::record::tree::At<'_>,
    written: &[(rhai::Identifier, rhai::Dynamic)],
    path: &str,
) -> String {
    use crate::record::tree::Node;
    let (first, rest) = path
        .split_once('.')
        .map_or((path, None), |(f, r)| (f, Some(r)));
    if let Ok(i) = crate::transform::convert::find_written(written, first) {
        return match rest {
            None => field_text(&written[i].1, ""),
            Some(rest) => field_text(&written[i].1, rest),
        };
    }
    let mut at = root;
    for part in std::iter::once(first).chain(rest.into_iter().flat_map(|r| r.split('.'))) {
        let Node::Object { start, len } = at.node() else {
            return String::new();
        };
        match at.member(*start, *len, part) {
            Some(next) => at = next,
            None => return String::new(),
        }
    }
    match at.node() {
        Node::Str(t) => at.str(*t).to_owned(),
        Node::Null => String::new(),
        _ => {
            let mut out = Vec::new();
            crate::transform::convert::write_node(&mut out, at);
            String::from_utf8(out).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod field_tests {
    #[test]
    fn a_field_is_read_as_text() {
        let record = crate::transform::convert::to_dynamic(serde_json::json!({
            "customer": { "id": "c-1", "tier": 2, "tags": ["a"], "none": null },
            "n": 1.5,
        }));
        let text = |p: &str| super::field_text(&record, p);
        assert_eq!(text("customer.id"), "c-1");
        assert_eq!(text("customer.tier"), "2");
        assert_eq!(text("customer.tags"), r#"["a"]"#);
        assert_eq!(text("customer.none"), "");
        assert_eq!(text("customer.missing"), "");
        assert_eq!(text("customer.id.deeper"), "");
        assert_eq!(text("n"), "1.5");
        assert_eq!(
            text("customer"),
            r#"{"id":"c-1","none":null,"tags":["a"],"tier":2}"#
        );
    }

    /// Read from a parsed tree, with fields written over it, a field is the
    /// text it is in the same record as a Rhai map.
    #[test]
    fn a_field_of_a_tree_is_read_as_of_the_map() {
        let text = r#"{"customer": {"id": "c-1", "tier": 2, "tags": ["a", 1.5], "none": null, "big": 18446744073709551615}, "n": 1.5, "s": "x"}"#;
        let mut tree = crate::record::tree::Tree::default();
        tree.parse(text).unwrap();
        let root = tree.root(text);
        let written: Vec<(rhai::Identifier, rhai::Dynamic)> = vec![
            ("s".into(), rhai::Dynamic::from_int(7)),
            ("w".into(), "new".into()),
        ];
        let map = crate::transform::convert::tree_to_dynamic_with(root, &written);
        for path in [
            "customer.id",
            "customer.tier",
            "customer.tags",
            "customer.none",
            "customer.big",
            "customer.missing",
            "customer.id.deeper",
            "customer",
            "n",
            "s",
            "s.x",
            "w",
            "nope",
        ] {
            assert_eq!(
                super::tree_field_text(root, &written, path),
                super::field_text(&map, path),
                "{path}"
            );
        }
    }
}

#[cfg(test)]
mod calls_tests {
    use super::calls_of;

    #[test]
    fn a_call_holds_at_most_its_records_and_bytes_in_order() {
        let items = [(0, 4), (1, 4), (2, 4), (4, 9), (5, 1)];
        assert_eq!(calls_of(items, 2, 100), [vec![0, 1], vec![2, 4], vec![5]]);
        assert_eq!(
            calls_of(items, 10, 9),
            [vec![0, 1], vec![2], vec![4], vec![5]]
        );
        assert!(calls_of([], 2, 9).is_empty());
    }
}

#[cfg(test)]
mod settle_tests {
    use super::{EntryErrors, settle_batch};
    use crate::delivery::{Error, ErrorClass};

    fn throttled_if_slow(code: &str) -> ErrorClass {
        if code == "Slow" {
            ErrorClass::Throttled
        } else {
            ErrorClass::Retryable
        }
    }

    #[test]
    fn an_accepted_call_fails_only_the_entries_it_names_each_by_its_code() {
        let mut results = vec![Ok(()); 5];
        let entries: EntryErrors =
            vec![None, Some(("Slow", Some("too fast"))), Some(("Oops", None))];
        settle_batch(
            "put",
            &[1, 2, 4],
            Ok(entries),
            throttled_if_slow,
            &mut results,
        );
        assert_eq!(
            results,
            [
                Ok(()),
                Ok(()),
                Err(Error::new(
                    ErrorClass::Throttled,
                    "put: record rejected: Slow too fast"
                )),
                Ok(()),
                Err(Error::new(
                    ErrorClass::Retryable,
                    "put: record rejected: Oops "
                )),
            ]
        );
    }

    #[test]
    fn a_failed_call_fails_each_of_its_records_alike() {
        let mut results = vec![Ok(()); 3];
        let err = Error::new(ErrorClass::Poison, "put: AccessDenied");
        settle_batch(
            "put",
            &[0, 2],
            Err(err.clone()),
            throttled_if_slow,
            &mut results,
        );
        assert_eq!(results, [Err(err.clone()), Ok(()), Err(err)]);
    }
}
