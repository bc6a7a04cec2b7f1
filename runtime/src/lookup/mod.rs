//! Enrichment lookups: tables a script reads with `lookup("name", key)`,
//! which gives the row (a map) whose key is `key`, or `()` when there is
//! none.
//!
//! A `file` table (CSV with a header row, or JSON Lines) is loaded once at
//! start-up into memory; a `dynamodb` table is read by key, with a cache
//! ([`dynamodb`]). A lookup that fails (DynamoDB still failing after the
//! retry policy) fails its record's script, which is then dead-lettered with
//! stage `lookup` ([`failure`]).

pub mod dynamodb;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use rhai::{Dynamic, EvalAltResult, ImmutableString};
use schemars::JsonSchema;
use serde::Deserialize;

/// The function scripts call.
pub const FUNCTION: &str = crate::transform::lint::LOOKUP;

/// A lookup table, by `type`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "Lookup")]
pub enum Config {
    /// A file loaded at start-up.
    File(FileConfig),
    /// A DynamoDB table read by key, cached.
    Dynamodb(dynamodb::Config),
}

impl Config {
    /// Whether the table is read from AWS (DynamoDB, or an S3 object).
    pub fn uses_aws(&self) -> bool {
        match self {
            Config::File(f) => f.path.starts_with("s3://"),
            Config::Dynamodb(_) => true,
        }
    }

    /// The IAM statements the table needs (none for a local file).
    pub fn permissions(&self) -> Vec<serde_json::Value> {
        use crate::aws::iam::{statement, table_arn};
        match self {
            Config::File(f) => match f.path.strip_prefix("s3://") {
                Some(object) => vec![statement(
                    &["s3:GetObject"],
                    vec![crate::aws::iam::sub(format!(
                        "arn:${{AWS::Partition}}:s3:::{object}"
                    ))],
                )],
                None => Vec::new(),
            },
            Config::Dynamodb(d) => vec![statement(
                &["dynamodb:GetItem", "dynamodb:BatchGetItem"],
                vec![table_arn(&d.table)],
            )],
        }
    }
}

/// `type: file`: a CSV file with a header row (every value a string) or a
/// JSON Lines file (one object per line, values as they are), loaded into
/// memory when the pipeline starts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileLookup")]
pub struct FileConfig {
    /// Path of the file, relative to the pipeline file's folder, or an S3
    /// object (`s3://bucket/key`, read when the pipeline starts). `.csv` is
    /// read as CSV, anything else as JSON Lines (unless `format` says).
    #[schemars(length(min = 1))]
    pub path: String,
    /// The column (CSV) or field (JSON Lines) whose value is a row's key;
    /// no two rows may have the same.
    #[schemars(length(min = 1))]
    pub key: String,
    /// `csv` or `jsonl`; by default from the file's extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
}

/// How a lookup file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "LookupFileFormat")]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl FileConfig {
    /// The format: as given, or `csv` for a `.csv` file, `jsonl` otherwise.
    pub fn format(&self) -> FileFormat {
        self.format.unwrap_or_else(|| {
            if self.path.to_ascii_lowercase().ends_with(".csv") {
                FileFormat::Csv
            } else {
                FileFormat::Jsonl
            }
        })
    }
}

/// One table's rows by key.
#[derive(Debug, Default)]
pub struct Rows {
    /// The field that holds each row's key.
    key: String,
    rows: HashMap<String, serde_json::Value>,
}

impl Rows {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows from JSON objects, keyed by their field `key`.
    pub fn from_json(key: &str, rows: &[serde_json::Value]) -> Result<Rows, String> {
        let mut out = Rows {
            key: key.to_owned(),
            ..Rows::default()
        };
        for (i, row) in rows.iter().enumerate() {
            out.add(key, row.clone(), &format!("row {}", i + 1))?;
        }
        Ok(out)
    }

    fn add(&mut self, key: &str, row: serde_json::Value, at: &str) -> Result<(), String> {
        let serde_json::Value::Object(_) = &row else {
            return Err(format!("{at} is not an object"));
        };
        let k = match &row[key] {
            serde_json::Value::Null => return Err(format!("{at} has no `{key}`")),
            serde_json::Value::String(s) if s.is_empty() => {
                return Err(format!("{at} has an empty `{key}`"));
            }
            other => key_text_json(other),
        };
        if self.rows.insert(k.clone(), row).is_some() {
            return Err(format!("{at}: a second row with the key `{k}`"));
        }
        Ok(())
    }

    /// Reads a lookup file.
    pub fn load(path: &Path, config: &FileConfig) -> Result<Rows, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        Rows::parse(&text, config)
    }

    /// Reads a lookup file's text.
    pub fn parse(text: &str, config: &FileConfig) -> Result<Rows, String> {
        let mut out = Rows {
            key: config.key.clone(),
            ..Rows::default()
        };
        match config.format() {
            FileFormat::Jsonl => {
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let at = format!("line {}", i + 1);
                    let row: serde_json::Value =
                        serde_json::from_str(line).map_err(|e| format!("{at}: {e}"))?;
                    out.add(&config.key, row, &at)?;
                }
            }
            FileFormat::Csv => {
                let mut reader = csv::Reader::from_reader(text.as_bytes());
                let header = reader
                    .headers()
                    .map_err(|e| format!("its header row: {e}"))?
                    .clone();
                if !header.iter().any(|h| h == config.key) {
                    return Err(format!(
                        "its header row has no column `{}` (it has {})",
                        config.key,
                        header
                            .iter()
                            .map(|h| format!("`{h}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                for record in reader.records() {
                    let record = record.map_err(|e| e.to_string())?;
                    let line = record.position().map_or(0, csv::Position::line);
                    let row: serde_json::Map<String, serde_json::Value> = header
                        .iter()
                        .zip(record.iter())
                        .map(|(h, v)| (h.to_owned(), serde_json::Value::from(v)))
                        .collect();
                    out.add(
                        &config.key,
                        serde_json::Value::Object(row),
                        &format!("line {line}"),
                    )?;
                }
            }
        }
        Ok(out)
    }
}

/// One lookup table.
#[derive(Debug)]
pub enum Table {
    /// Rows in memory.
    Rows(Rows),
    /// Rows of an S3 object, read when the pipeline starts.
    S3(FileConfig, OnceLock<Rows>),
    /// A DynamoDB table.
    Dynamodb(Box<dynamodb::Remote>),
}

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No table has that name: the script's mistake.
    Unknown(String),
    /// The table could not be read.
    Failed(String),
}

/// The pipeline's lookup tables, by name.
#[derive(Debug, Default)]
pub struct Tables {
    tables: IndexMap<String, Table>,
}

impl Tables {
    /// Loads one table.
    pub fn load_one(
        name: &str,
        config: &Config,
        resolve: &dyn Fn(&str) -> std::path::PathBuf,
    ) -> Result<Table, String> {
        match config {
            Config::File(f) if f.path.starts_with("s3://") => {
                Ok(Table::S3(f.clone(), OnceLock::new()))
            }
            Config::File(f) => Rows::load(&resolve(&f.path), f)
                .map(Table::Rows)
                .map_err(|e| format!("lookup `{name}` (`{}`): {e}", f.path)),
            Config::Dynamodb(d) => Ok(Table::Dynamodb(Box::new(dynamodb::Remote::new(name, d)))),
        }
    }

    /// Adds (or replaces) a table.
    pub fn insert(&mut self, name: &str, table: Table) {
        self.tables.insert(name.to_owned(), table);
    }

    /// Gives the DynamoDB tables their client and the runtime their calls run on.
    pub fn connect(
        &self,
        client: &aws_sdk_dynamodb::Client,
        runtime: &tokio::runtime::Handle,
        retry: &crate::delivery::Policy,
    ) {
        for t in self.tables.values() {
            if let Table::Dynamodb(r) = t {
                r.connect(client.clone(), runtime.clone(), retry.clone());
            }
        }
    }

    /// Reads the tables kept in S3.
    pub async fn fetch(
        &self,
        s3: &aws_sdk_s3::Client,
        retry: &crate::delivery::Policy,
    ) -> Result<(), String> {
        for (name, t) in &self.tables {
            let Table::S3(config, rows) = t else { continue };
            let at = |e: String| format!("lookup `{name}` (`{}`): {e}", config.path);
            let (bucket, key) = config.path["s3://".len()..]
                .split_once('/')
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .ok_or_else(|| at("expected s3://bucket/key".into()))?;
            let what = format!("get_object of `{}`", config.path);
            let object = retry
                .send(&what, || s3.get_object().bucket(bucket).key(key).send())
                .await
                .map_err(|e| at(e.message))?;
            let body = object
                .body
                .collect()
                .await
                .map_err(|e| at(format!("reading it failed: {e}")))?
                .into_bytes();
            let text =
                String::from_utf8(body.to_vec()).map_err(|_| at("it is not UTF-8".into()))?;
            let _ = rows.set(Rows::parse(&text, config).map_err(at)?);
        }
        Ok(())
    }

    /// The DynamoDB tables: name, cache hits, misses and calls made so far.
    pub fn stats(&self) -> Vec<(&str, u64, u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        self.tables
            .iter()
            .filter_map(|(name, t)| match t {
                Table::Dynamodb(r) => Some((
                    name.as_str(),
                    r.stats.hits.load(Relaxed),
                    r.stats.misses.load(Relaxed),
                    r.stats.calls.load(Relaxed),
                )),
                Table::Rows(_) | Table::S3(..) => None,
            })
            .collect()
    }

    /// Reads ahead the rows of `keys` of DynamoDB table `name`.
    pub fn prefetch(&self, name: &str, keys: Vec<String>) {
        if let Some(Table::Dynamodb(r)) = self.tables.get(name) {
            r.prefetch(keys);
        }
    }

    /// Whether table `name` is read from DynamoDB.
    pub fn is_remote(&self, name: &str) -> bool {
        matches!(self.tables.get(name), Some(Table::Dynamodb(_)))
    }

    /// The tables, with the rows `replace` gives instead of theirs, keyed
    /// as theirs are (a `sluice test` case's own tables).
    pub fn with_rows(
        &self,
        replace: &std::collections::BTreeMap<String, Vec<serde_json::Value>>,
    ) -> Result<Tables, String> {
        let mut tables = IndexMap::new();
        for (name, table) in &self.tables {
            let key = match table {
                Table::Rows(r) => r.key.as_str(),
                Table::S3(c, _) => c.key.as_str(),
                Table::Dynamodb(r) => r.key(),
            };
            let table = match (replace.get(name), table) {
                (Some(given), _) => Table::Rows(
                    Rows::from_json(key, given)
                        .map_err(|e| format!("lookup `{name}` of the case: {e}"))?,
                ),
                (None, Table::Rows(rows)) => Table::Rows(Rows {
                    key: rows.key.clone(),
                    rows: rows.rows.clone(),
                }),
                (None, Table::S3(c, _)) => Table::S3(c.clone(), OnceLock::new()),
                // Not connected: a lookup says to give the case's rows.
                (None, Table::Dynamodb(r)) => Table::Dynamodb(Box::new(r.unconnected())),
            };
            tables.insert(name.clone(), table);
        }
        if let Some(unknown) = replace.keys().find(|n| !self.tables.contains_key(*n)) {
            return Err(self.unknown(unknown));
        }
        Ok(Tables { tables })
    }

    /// The names of the tables.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    fn unknown(&self, name: &str) -> String {
        format!(
            "there is no lookup named `{name}`{}",
            match self.tables.len() {
                0 => " (the pipeline has no `lookups`)".to_owned(),
                _ => format!(
                    " (the lookups are {})",
                    self.names()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        )
    }

    /// The row of table `name` whose key is `key`: `None` when there is none.
    pub fn get(&self, name: &str, key: &str) -> Result<Option<serde_json::Value>, Miss> {
        match self.tables.get(name) {
            Some(Table::Rows(rows)) => Ok(rows.rows.get(key).cloned()),
            Some(Table::S3(c, rows)) => match rows.get() {
                Some(rows) => Ok(rows.rows.get(key).cloned()),
                None => Err(Miss::Failed(format!(
                    "lookup `{name}` reads `{}`, which `sluice test` does not read: give the case's rows under `lookups`",
                    c.path
                ))),
            },
            Some(Table::Dynamodb(r)) => r.get(key).map_err(Miss::Failed),
            None => Err(Miss::Unknown(self.unknown(name))),
        }
    }
}

/// A key as text: a string as it is, any other value its JSON (as a
/// row's key is read).
pub fn key_text(key: &Dynamic) -> String {
    crate::sinks::field_text(key, "")
}

/// [`key_text`] of a JSON value.
pub fn key_text_json(key: &serde_json::Value) -> String {
    match key {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a script's error carries when a lookup failed.
#[derive(Debug, Clone)]
pub struct Failed(pub String);

/// The reason of a lookup that failed a script, if that is why it failed.
pub fn failure(e: &EvalAltResult) -> Option<String> {
    match e {
        EvalAltResult::ErrorRuntime(v, _) => v.read_lock::<Failed>().map(|f| f.0.clone()),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => failure(inner),
        _ => None,
    }
}

/// Registers `lookup(name, key)` on a script engine.
pub fn register(engine: &mut rhai::Engine, tables: Arc<Tables>) {
    engine.register_fn(
        FUNCTION,
        move |name: ImmutableString, key: Dynamic| -> Result<Dynamic, Box<EvalAltResult>> {
            match tables.get(&name, &key_text(&key)) {
                Ok(Some(row)) => Ok(crate::transform::convert::to_dynamic(row)),
                Ok(None) => Ok(Dynamic::UNIT),
                Err(Miss::Unknown(e)) => Err(e.into()),
                Err(Miss::Failed(e)) => Err(Box::new(EvalAltResult::ErrorRuntime(
                    Dynamic::from(Failed(e)),
                    rhai::Position::NONE,
                ))),
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str, key: &str) -> Result<Rows, String> {
        std::fs::write(dir.join(name), text).unwrap();
        Rows::load(
            &dir.join(name),
            &FileConfig {
                path: name.into(),
                key: key.into(),
                format: None,
            },
        )
    }

    #[test]
    fn csv_and_json_lines_rows_by_key() {
        let t = tempfile::tempdir().unwrap();
        let csv = file(
            t.path(),
            "rates.csv",
            "currency,rate,name\nEUR,1.08,\"Euro, the\"\nGBP,1.27,Pound\n",
            "currency",
        )
        .unwrap();
        assert_eq!(csv.len(), 2);
        assert_eq!(
            csv.rows["EUR"],
            serde_json::json!({"currency": "EUR", "rate": "1.08", "name": "Euro, the"})
        );
        let jsonl = file(
            t.path(),
            "c.jsonl",
            "{\"id\":7,\"tier\":\"gold\",\"limit\":100}\n\n{\"id\":\"x\",\"tier\":\"free\"}\n",
            "id",
        )
        .unwrap();
        assert_eq!(jsonl.rows["7"]["limit"], 100);
        assert!(jsonl.rows.contains_key("x"));
    }

    #[test]
    fn a_bad_file_says_where() {
        let t = tempfile::tempdir().unwrap();
        let err = |name: &str, text: &str, key: &str| file(t.path(), name, text, key).unwrap_err();
        assert_eq!(
            err("a.csv", "code,rate\nEUR,1\n", "currency"),
            "its header row has no column `currency` (it has `code`, `rate`)"
        );
        assert_eq!(
            err("b.csv", "k,v\na,1\na,2\n", "k"),
            "line 3: a second row with the key `a`"
        );
        assert_eq!(
            err("c.jsonl", "{\"k\":1}\n{\"v\":2}\n", "k"),
            "line 2 has no `k`"
        );
        assert!(
            err("d.jsonl", "{\"k\":1}\n{oops\n", "k").starts_with("line 2: key must be a string")
        );
        assert_eq!(err("e.jsonl", "[1]\n", "k"), "line 1 is not an object");
    }

    #[test]
    fn an_unknown_table_names_the_others() {
        let t = Tables {
            tables: IndexMap::from([("rates".to_owned(), Table::Rows(Rows::default()))]),
        };
        assert_eq!(t.get("rates", "EUR"), Ok(None));
        assert_eq!(
            t.get("rate", "EUR"),
            Err(Miss::Unknown(
                "there is no lookup named `rate` (the lookups are `rates`)".into()
            ))
        );
    }
}
