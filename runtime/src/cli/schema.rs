//! `sluice schema`: print the JSON Schema of the pipeline format, or of test files.

/// Prints the pipeline format's schema (the content of
/// `schema/pipeline.schema.json`), or with `tests` the test files' schema
/// (`schema/test.schema.json`).
pub fn main(tests: bool) -> i32 {
    if tests {
        let mut text =
            serde_json::to_string_pretty(super::test::file::schema()).unwrap_or_default();
        text.push('\n');
        super::print_all(crate::secrets::redact(&text).as_bytes())
    } else {
        super::print_all(crate::secrets::redact(&crate::config::schema::generate_text()).as_bytes())
    }
}
