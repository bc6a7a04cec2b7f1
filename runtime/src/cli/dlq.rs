//! `sluice dlq redrive PIPELINE`: run the records of the dead-letter queue
//! through the pipeline again, from their original data.
//!
//! The run is `sluice run` with the DLQ as its source. Records that fail again
//! are dead-lettered again (with the new reason); an entry is removed only
//! after its record was delivered or dead-lettered again, so a redrive that
//! stops half-way loses nothing (what it delivered may be delivered twice).
//!
//! - `file`: the file is renamed to `FILE.redriving` and read from there;
//!   envelopes of records that fail again go to a new `FILE`. The snapshot is
//!   deleted at the end of a successful redrive; an unfinished one is picked
//!   up by the next redrive.
//! - `s3`: the objects under the key template's fixed prefix are listed at the
//!   start; each is deleted once its records are done. Envelopes of records
//!   that fail again get keys with `-redrive-<time>` after `{part}`.
//! - `sqs`: messages sent before the redrive started are received and deleted
//!   once their records are done; newer ones wait for the next redrive.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::aws::Clients;
use crate::config::Loaded;
use crate::delivery::Error;
use crate::sinks;
use crate::sinks::DlqConfig;
use crate::sources::{Reader, dlq};

/// Arguments of `sluice dlq`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the dead-lettered records through the pipeline again and remove
    /// each from the DLQ once it is delivered (or dead-lettered again).
    #[command(mut_arg("stop_when_idle", |a| a.hide(true)))]
    Redrive(super::run::Args),
}

/// Runs a `sluice dlq` command.
pub fn main(command: &Command) -> i32 {
    match command {
        Command::Redrive(args) => {
            if args.stop_when_idle.is_some() {
                crate::errln!("error: `--stop-when-idle` does not apply: a redrive ends by itself");
                return super::EXIT_INVALID;
            }
            super::run::execute(args, super::run::Mode::Redrive)
        }
    }
}

/// A redrive being prepared: what the DLQ is and where its entries are read from.
pub struct Redrive {
    dlq: DlqConfig,
    /// File DLQ: the file, and the snapshot it was renamed to.
    file: Option<(PathBuf, PathBuf, String)>,
    started_ms: u128,
}

/// Gets the DLQ ready to be read back (a file DLQ is renamed to its snapshot).
pub fn prepare(loaded: &Loaded) -> Result<Redrive, String> {
    let dlq = loaded.pipeline.dlq.clone();
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let file = match &dlq {
        DlqConfig::Stdout(_) => {
            return Err(
                "the dead-letter queue is `stdout`, which cannot be read back: redrive needs a `file`, `s3` or `sqs` DLQ"
                    .into(),
            );
        }
        DlqConfig::File(c) => {
            let path = loaded.resolve(&c.path);
            let mut snapshot = path.clone().into_os_string();
            snapshot.push(".redriving");
            let snapshot = PathBuf::from(snapshot);
            if snapshot.exists() {
                crate::errln!(
                    "note: resuming the unfinished redrive of `{}.redriving`",
                    c.path
                );
                if path.exists() {
                    crate::errln!(
                        "note: `{}` holds newer entries; they wait for the next redrive",
                        c.path
                    );
                }
            } else if path.exists() {
                std::fs::rename(&path, &snapshot).map_err(|e| {
                    format!("cannot move `{}` aside to redrive it: {e}", path.display())
                })?;
            } else {
                std::fs::write(&snapshot, "")
                    .map_err(|e| format!("cannot write `{}`: {e}", snapshot.display()))?;
            }
            Some((path, snapshot, format!("{}.redriving", c.path)))
        }
        DlqConfig::S3(_) | DlqConfig::Sqs(_) => None,
    };
    Ok(Redrive {
        dlq,
        file,
        started_ms,
    })
}

impl Redrive {
    /// Opens the DLQ as a source.
    pub async fn open(
        &self,
        aws: Option<Arc<Clients>>,
        retry: &crate::delivery::Policy,
    ) -> Result<Reader, Error> {
        let aws = || aws.clone().ok_or_else(|| Error::fatal("no AWS clients"));
        let reader = match (&self.dlq, &self.file) {
            (DlqConfig::File(_), Some((_, snapshot, shown))) => dlq::Reader::file(snapshot, shown)?,
            (DlqConfig::S3(c), _) => dlq::Reader::s3(&c.bucket, &c.key, aws()?)
                .await
                .map_err(|e| e.context("the dead-letter queue"))?,
            (DlqConfig::Sqs(c), _) => dlq::Reader::sqs(&c.queue, aws()?, retry)
                .await
                .map_err(|e| e.context("the dead-letter queue"))?,
            _ => return Err(Error::fatal("the dead-letter queue cannot be read back")),
        };
        Ok(Reader::Dlq(reader))
    }

    /// Where records that fail again are dead-lettered: the same DLQ, as a
    /// new file beside the snapshot, or under new S3 keys.
    pub fn dlq_sink(&self) -> sinks::Config {
        match &self.dlq {
            DlqConfig::File(c) => sinks::Config::File(sinks::file::Config {
                path: c.path.clone(),
                mode: sinks::file::Mode::Append,
            }),
            DlqConfig::S3(c) => {
                let mut c = c.clone();
                c.key = c
                    .key
                    .replace("{part}", &format!("{{part}}-redrive-{}", self.started_ms));
                sinks::Config::S3(c)
            }
            other => other.as_sink(),
        }
    }

    /// After a redrive that finished: removes the snapshot of a file DLQ.
    pub fn finish(&self) -> Result<(), String> {
        if let Some((_, snapshot, _)) = &self.file {
            std::fs::remove_file(snapshot).map_err(|e| {
                format!(
                    "the redrive finished, but `{}` could not be removed (delete it, or the next redrive runs it again): {e}",
                    snapshot.display()
                )
            })?;
        }
        Ok(())
    }
}
