//! `sluice schema`: print the pipeline format's JSON Schema.

use super::EXIT_OK;

/// Prints the schema (the content of `schema/pipeline.schema.json`).
pub fn main() -> i32 {
    crate::out!("{}", crate::config::schema::generate_text());
    EXIT_OK
}
