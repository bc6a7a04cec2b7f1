//! The reference tables of `docs/pipeline-format.md` (each field's type,
//! whether it is required, its default and its meaning), generated from the
//! pipeline format's JSON Schema, itself generated from the config types and
//! their doc comments. A component's table therefore comes from the
//! component; the prose around the tables stays hand-written.
//!
//! In the page, a table sits between `<!-- reference: WHAT -->` and
//! `<!-- end reference -->`, where `WHAT` is `sink TYPE`, `source TYPE`,
//! `sinks` or `sources` (every type, what it does and its fields),
//! `Pipeline` (the top-level keys), the name of a definition (`Retry`), or
//! `metrics` (the metric names, from [`crate::metrics::names`], in
//! `docs/daemon.md`). A test fails when a table is stale or links to a
//! heading the page does not have; `SLUICE_BLESS=1` rewrites them.

use serde_json::Value;

const START: &str = "<!-- reference: ";
const END: &str = "<!-- end reference -->";

/// `text` with every reference table generated afresh from `schema`.
pub fn render(text: &str, schema: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(START) {
        let (before, marker) = rest.split_at(at);
        out.push_str(before);
        let line_end = marker
            .find("-->")
            .ok_or_else(|| "a reference marker without `-->`".to_owned())?;
        let what = marker[START.len()..line_end].trim();
        let end = marker
            .find(END)
            .ok_or_else(|| format!("the reference table of `{what}` has no `{END}`"))?;
        out.push_str(&marker[..line_end + 3]);
        out.push('\n');
        out.push_str(&table(schema, what)?);
        out.push_str(END);
        rest = &marker[end + END.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The table of `what`: `sink TYPE`, `source TYPE`, `sinks`, `sources`,
/// `Pipeline` or a definition's name.
pub fn table(schema: &Value, what: &str) -> Result<String, String> {
    if what == "metrics" {
        return Ok(crate::metrics::names::table());
    }
    if let Some(union) = match what {
        "sinks" => Some("Sink"),
        "sources" => Some("Source"),
        _ => None,
    } {
        return union_table(schema, union);
    }
    let object = match what.split_once(' ') {
        Some((union, ty)) => variant(schema, &capitalize(union), ty),
        None if what == "Pipeline" => Some(schema),
        None => schema.pointer(&format!("/$defs/{what}")),
    }
    .ok_or_else(|| format!("the schema has nothing for the reference `{what}`"))?;
    let required: Vec<&str> = object["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut rows =
        String::from("| Field | Type | Required | Default | Meaning |\n|---|---|---|---|---|\n");
    let Some(properties) = object["properties"].as_object() else {
        return Ok("This type has no other fields.\n".to_owned());
    };
    let mut any = false;
    for (name, p) in properties {
        if name == "type" && p.get("const").is_some() {
            continue;
        }
        any = true;
        rows.push_str(&format!(
            "| `{name}` | {} | {} | {} | {} |\n",
            type_of(schema, p),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            default_of(p),
            cell(p["description"].as_str().unwrap_or_default()),
        ));
    }
    if !any {
        return Ok("This type has no other fields.\n".to_owned());
    }
    Ok(rows)
}

/// Every type of a `type`-tagged union: its name, what it does (the
/// registration line's description) and its other fields.
fn union_table(schema: &Value, union: &str) -> Result<String, String> {
    let branches = schema
        .pointer(&format!("/$defs/{union}/allOf"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the schema has no union `{union}`"))?;
    let mut rows = String::from("| `type` | What it does | Fields |\n|---|---|---|\n");
    for b in branches {
        let then = &b["then"];
        let ty = then
            .pointer("/properties/type/const")
            .and_then(Value::as_str);
        let Some(ty) = ty else { continue };
        let fields: Vec<String> = then["properties"]
            .as_object()
            .map(|p| {
                p.keys()
                    .filter(|k| *k != "type")
                    .map(|k| format!("`{k}`"))
                    .collect()
            })
            .unwrap_or_default();
        rows.push_str(&format!(
            "| `{ty}` | {} | {} |\n",
            cell(
                then.pointer("/properties/type/description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
            if fields.is_empty() {
                "none".to_owned()
            } else {
                fields.join(", ")
            }
        ));
    }
    Ok(rows)
}

/// The `then` of a `type`-tagged union's branch (see `schema::rewrite_tagged_unions`).
fn variant<'a>(schema: &'a Value, union: &str, ty: &str) -> Option<&'a Value> {
    schema
        .pointer(&format!("/$defs/{union}/allOf"))?
        .as_array()?
        .iter()
        .find(|b| {
            b.pointer("/if/properties/type/const")
                .and_then(Value::as_str)
                == Some(ty)
        })
        .map(|b| &b["then"])
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A property's type, as a reader names it.
fn type_of(schema: &Value, p: &Value) -> String {
    if let Some(r) = p["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        let def = schema
            .pointer(&format!("/$defs/{name}"))
            .unwrap_or(&Value::Null);
        if name == "Duration" {
            return "duration".into();
        }
        if let Some(values) = enum_values(def) {
            return values;
        }
        return format!("[{}](#{})", name.to_lowercase(), anchor(name));
    }
    for alt in ["anyOf", "oneOf"] {
        if let Some(first) = p[alt]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["type"] != "null"))
        {
            return type_of(schema, first);
        }
    }
    if let Some(values) = enum_values(p) {
        return values;
    }
    let ty = match &p["type"] {
        Value::String(t) => t.as_str(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("any"),
        _ => "any",
    };
    match ty {
        "array" => format!("list of {}", plural(&type_of(schema, &p["items"]))),
        "object" => match p.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map of {}", plural(&type_of(schema, v))),
            _ => "mapping".into(),
        },
        "integer" => match (p["minimum"].as_i64(), p["maximum"].as_i64()) {
            (Some(lo), Some(hi)) => format!("integer, {lo} to {hi}"),
            (Some(lo), None) if lo > 0 => format!("integer, at least {lo}"),
            _ => "integer".into(),
        },
        other => other.into(),
    }
}

/// The heading of the page that describes definition `name`.
fn anchor(name: &str) -> String {
    match name {
        "Sink" => "sinks".into(),
        "Dlq" => "dead-letter-queue".into(),
        "Aws" => "aws-connection".into(),
        "Transform" => "transforms".into(),
        "Route" => "routes".into(),
        "DedupStore" => "dedup-stores".into(),
        "Lookup" => "lookups".into(),
        "AggregateTime" | "AggregateWindow" => "aggregate-window-and-time".into(),
        "AggregateEmit" | "AggregateScript" => "aggregate-script-reducers".into(),
        "LookupCache" => "lookup-cache".into(),
        "SchemaSource" => "schemas".into(),
        "Unrouted" => "unrouted-records".into(),
        other => other.to_lowercase(),
    }
}

fn plural(t: &str) -> String {
    match t {
        "string" | "integer" | "boolean" | "number" | "duration" => format!("{t}s"),
        other => other.into(),
    }
}

/// The values of an enumeration: `` `a`, `b` or `c` ``.
fn enum_values(def: &Value) -> Option<String> {
    let values: Vec<String> = match (def["enum"].as_array(), def["oneOf"].as_array()) {
        (Some(e), _) => e
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        (None, Some(branches)) => branches
            .iter()
            .map(|b| {
                b["const"]
                    .as_str()
                    .or_else(|| b["enum"].get(0).and_then(Value::as_str))
                    .map(str::to_owned)
            })
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    let quoted: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [init @ .., last] => Some(format!("{} or {last}", init.join(", "))),
    }
}

/// A default as written in a pipeline; empty when there is none.
fn default_of(p: &Value) -> String {
    match p.get("default") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => format!("`{}`", s.replace('|', "\\|")),
        Some(Value::Array(a)) if a.is_empty() => String::new(),
        Some(Value::Object(o)) if o.is_empty() => String::new(),
        Some(v) => format!("`{}`", flow(v).replace('|', "\\|")),
    }
}

/// A value as YAML's flow style writes it: `{ format: json }`, `[a, b]`.
fn flow(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .map(|(k, v)| format!("{k}: {}", flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A description as one table cell.
fn cell(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_tables_of_the_docs_are_up_to_date() {
        for page in ["pipeline-format.md", "daemon.md"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs")
                .join(page);
            let text = std::fs::read_to_string(&path).unwrap();
            let fresh = render(&text, super::super::schema::pipeline_schema()).unwrap();
            if std::env::var_os("SLUICE_BLESS").is_some() {
                std::fs::write(&path, &fresh).unwrap();
                continue;
            }
            assert!(text.contains(START), "docs/{page} has no reference table");
            assert!(
                text == fresh,
                "docs/{page}'s reference tables are stale: run `SLUICE_BLESS=1 cargo test -p sluice --lib reference`"
            );
        }
    }

    /// The anchors of a page's headings, as GitHub makes them (a repeated
    /// heading's anchor gets `-1`, `-2` …).
    fn anchors(text: &str) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let mut in_code = false;
        for line in text.lines() {
            if line.starts_with("```") {
                in_code = !in_code;
            }
            let Some(title) = line.trim_start_matches('#').strip_prefix(' ') else {
                continue;
            };
            if in_code || !line.starts_with('#') {
                continue;
            }
            let base: String = title
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            let n = seen
                .iter()
                .filter(|a| {
                    **a == base
                        || a.strip_prefix(&format!("{base}-"))
                            .is_some_and(|r| r.parse::<u32>().is_ok())
                })
                .count();
            seen.push(if n == 0 { base } else { format!("{base}-{n}") });
        }
        seen
    }

    #[test]
    fn every_link_of_the_reference_tables_goes_to_a_heading_of_the_page() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/pipeline-format.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let headings = anchors(&text);
        let mut rest = text.as_str();
        let mut links = 0;
        while let Some(at) = rest.find(START) {
            let end = rest[at..].find(END).unwrap() + at;
            for (i, _) in rest[at..end].match_indices("](#") {
                let from = at + i + 3;
                let anchor = &rest[from..from + rest[from..].find(')').unwrap()];
                assert!(
                    headings.iter().any(|h| h == anchor),
                    "a reference table links to `#{anchor}`, which is no heading of the page"
                );
                links += 1;
            }
            rest = &rest[end..];
        }
        assert!(links > 10, "{links} links");
        assert_eq!(
            anchors("# A b\n## `kinesis`\n```\n# not\n```\n### `kinesis`\n"),
            ["a-b", "kinesis", "kinesis-1"]
        );
    }

    #[test]
    fn defaults_are_written_as_yaml_writes_them() {
        let schema = super::super::schema::pipeline_schema();
        let t = table(schema, "Pipeline").unwrap();
        assert!(
            t.contains("| `decode` | [decode](#decode) | no | `{ format: json }` |"),
            "{t}"
        );
        assert!(
            t.contains("| `dlq` | [dlq](#dead-letter-queue) | yes |  |"),
            "{t}"
        );
        let t = table(schema, "sinks").unwrap();
        assert!(
            t.contains("| `file` | Write JSON Lines to a local file. | `mode`, `path` |"),
            "{t}"
        );
    }

    #[test]
    fn a_table_gives_type_requirement_default_and_meaning() {
        let schema = super::super::schema::pipeline_schema();
        let t = table(schema, "sink kinesis").unwrap();
        assert!(
            t.contains("| `stream` | string | yes |  | Stream name or ARN. |"),
            "{t}"
        );
        let t = table(schema, "sink file").unwrap();
        assert!(
            t.contains("| `mode` | `truncate` or `append` | no | `truncate` |"),
            "{t}"
        );
        let t = table(schema, "sink s3").unwrap();
        assert!(t.contains("| `max_age` | duration | no | `1m` |"), "{t}");
        assert!(t.contains("| `retry` | [retry](#retry) | no |"), "{t}");
        assert!(table(schema, "sink nope").is_err());
        let doc = "a\n<!-- reference: sink stdout -->\nold\n<!-- end reference -->\nb\n";
        assert_eq!(
            render(doc, schema).unwrap(),
            "a\n<!-- reference: sink stdout -->\nThis type has no other fields.\n<!-- end reference -->\nb\n"
        );
    }
}
