//! What the pipeline format reads for a `file` sink.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Writer;
use crate::delivery::Error;
use crate::sinks::{BuildCx, Sink};

/// Write records to a local file as JSON Lines, one compact document per line.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileSink")]
pub struct Config {
    /// The file to write, relative to the pipeline's folder unless absolute. Missing parent
    /// folders are created.
    pub path: String,
    /// `truncate` empties the file when the run starts; `append` keeps what is there and adds
    /// to it.
    #[serde(default)]
    pub mode: Mode,
}

/// What happens to an existing file when a run starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "FileSinkMode")]
pub enum Mode {
    /// Empty the file first.
    #[default]
    Truncate,
    /// Keep what is there and add to it.
    Append,
}

impl Sink for Config {
    type Writer = Writer;

    fn uses_aws(&self) -> bool {
        false
    }

    fn writes_locally(&self) -> bool {
        true
    }

    fn for_redrive(&self) -> Option<Self> {
        Some(Config {
            mode: Mode::Append,
            ..self.clone()
        })
    }

    async fn open(&self, cx: &BuildCx<'_>) -> Result<Writer, Error> {
        Writer::open(&(cx.resolve)(&self.path), self.mode)
    }
}

#[cfg(test)]
mod tests {
    use crate::sinks;
    use serde_json::json;

    fn sink(v: serde_json::Value) -> sinks::Config {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_redrive_appends_to_a_file_sink_and_leaves_the_others_as_written() {
        let file = sink(json!({ "type": "file", "path": "out.jsonl" }));
        let sinks::Config::File(redriven) = file.for_redrive() else {
            panic!("a file sink stays a file sink");
        };
        assert_eq!(
            (redriven.path.as_str(), redriven.mode),
            ("out.jsonl", super::Mode::Append)
        );
        let s3 = sink(json!({ "type": "s3", "bucket": "lake" }));
        assert_eq!(format!("{:?}", s3.for_redrive()), format!("{s3:?}"));
    }
}
