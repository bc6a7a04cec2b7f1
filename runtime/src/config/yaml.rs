//! YAML text → a tree of [`Node`]s that remember where they came from.
//!
//! Built on the event parser of `saphyr-parser`, which gives a span for every
//! event, so every key and value of a pipeline can be pointed at in a
//! diagnostic. Plain scalars are typed with the YAML 1.2 core schema
//! (`true`, `12`, `1.5`, `null`); quoted and block scalars are strings.
//! `${VAR}` interpolation happens here, on scalar text, before typing.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};
use serde_json::{Map, Number, Value};

use super::interpolate::{Env, Problem, interpolate};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, FileId};

/// A YAML node with its byte span in the source file.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub kind: Kind,
    /// Byte range in the file.
    pub span: Range<usize>,
    /// For scalars: how the scalar was written.
    pub style: Option<ScalarStyle>,
}

/// The value of a [`Node`].
#[derive(Debug, Clone)]
pub enum Kind {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order. Keys are strings.
    Map(Vec<(Node, Node)>),
}

/// Where a value of the JSON form came from: the key's span (for mapping
/// values) and the value's span.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The key, when the value is in a mapping.
    pub key: Option<Range<usize>>,
    /// The value.
    pub value: Range<usize>,
    /// For scalars, the style (used to map script positions back into the file).
    pub style: Option<ScalarStyle>,
}

/// JSON pointer (`/sinks/archive/path`) → where it came from.
pub type SpanMap = HashMap<String, Origin>;

/// Parses YAML text into a node tree. Syntax errors, duplicate keys and unset
/// variables are added to `diags`; `None` when the text is not well-formed YAML.
pub fn parse(text: &str, file: FileId, env: &Env, diags: &mut Diagnostics) -> Option<Node> {
    let offsets = CharOffsets::new(text);
    let mut builder = Builder {
        text,
        file,
        env,
        offsets: &offsets,
        stack: Vec::new(),
        root: None,
        anchors: HashMap::new(),
        aliased: 0,
        diags: Vec::new(),
        documents: 0,
    };
    let mut parser = Parser::new_from_str(text);
    let result = parser.load(&mut builder, true);
    let found = std::mem::take(&mut builder.diags);
    let documents = builder.documents;
    let root = builder.root.take();
    for d in found {
        diags.push(d);
    }
    if let Err(e) = result {
        let at = offsets.byte(e.marker().index());
        diags.push(
            Diagnostic::error(Code::YamlSyntax, format!("invalid YAML: {}", e.info()))
                .at(file, at..at),
        );
        return None;
    }
    if documents > 1 {
        diags.push(
            Diagnostic::error(
                Code::YamlSyntax,
                "a pipeline file holds one YAML document, found several",
            )
            .at(file, 0..0),
        );
    }
    Some(root.unwrap_or(Node {
        kind: Kind::Null,
        span: 0..0,
        style: None,
    }))
}

/// Converts a node tree into JSON, recording every value's origin by JSON pointer.
pub fn to_json(node: &Node, spans: &mut SpanMap) -> Value {
    fn walk(
        node: &Node,
        key: Option<Range<usize>>,
        pointer: &mut String,
        spans: &mut SpanMap,
    ) -> Value {
        spans.insert(
            pointer.clone(),
            Origin {
                key,
                value: node.span.clone(),
                style: node.style,
            },
        );
        match &node.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    out.push(walk(item, None, pointer, spans));
                    pointer.truncate(len);
                }
                Value::Array(out)
            }
            Kind::Map(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    let name = key_text(k);
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                    out.insert(name, walk(v, Some(k.span.clone()), pointer, spans));
                    pointer.truncate(len);
                }
                Value::Object(out)
            }
        }
    }
    walk(node, None, &mut String::new(), spans)
}

/// The text of a mapping key.
pub fn key_text(node: &Node) -> String {
    match &node.kind {
        Kind::Str(s) => s.clone(),
        Kind::Null => "null".into(),
        Kind::Bool(b) => b.to_string(),
        Kind::Int(i) => i.to_string(),
        Kind::Float(f) => f.to_string(),
        Kind::Seq(_) | Kind::Map(_) => "<complex key>".into(),
    }
}

/// Maps the parser's character indexes to byte offsets.
struct CharOffsets {
    /// Byte offset of each character, or empty when the text is ASCII.
    bytes: Vec<usize>,
    len: usize,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        let bytes = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices().map(|(i, _)| i).collect()
        };
        CharOffsets {
            bytes,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.bytes.is_empty() {
            char_index.min(self.len)
        } else {
            self.bytes.get(char_index).copied().unwrap_or(self.len)
        }
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        /// The keys' texts, for finding a duplicate in constant time.
        names: HashSet<String>,
        key: Option<Node>,
        start: usize,
        anchor: usize,
    },
}

/// Most values that aliases (`*name`) may add to a pipeline in all: a
/// pipeline is small, and a few nested aliases can otherwise expand to
/// billions of values ("billion laughs").
pub const MAX_ALIAS_VALUES: usize = 100_000;

/// The number of values in a node, itself included.
fn size(node: &Node) -> usize {
    1 + match &node.kind {
        Kind::Seq(items) => items.iter().map(size).sum(),
        Kind::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
        _ => 0,
    }
}

struct Builder<'a> {
    text: &'a str,
    file: FileId,
    env: &'a Env,
    offsets: &'a CharOffsets,
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, (Node, usize)>,
    /// Values added by aliases so far.
    aliased: usize,
    diags: Vec<Diagnostic>,
    documents: usize,
}

/// Keys whose values are Rhai source: `${...}` there is Rhai's string
/// interpolation, not an environment variable.
const SCRIPT_KEYS: [&str; 2] = ["script", "when"];

impl Builder<'_> {
    fn range(&self, span: &Span) -> Range<usize> {
        self.offsets.byte(span.start.index())..self.offsets.byte(span.end.index())
    }

    /// Whether the scalar about to be added is the value of a script key.
    fn in_script_value(&self) -> bool {
        match self.stack.last() {
            Some(Frame::Map { key: Some(k), .. }) => {
                matches!(&k.kind, Kind::Str(s) if SCRIPT_KEYS.contains(&s.as_str()))
            }
            _ => false,
        }
    }

    fn is_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn add(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            let n = size(&node);
            self.anchors.insert(anchor, (node.clone(), n));
        }
        match self.stack.last_mut() {
            // Only the first document is the pipeline; later ones are reported.
            None if self.root.is_some() => {}
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                names,
                key,
                ..
            }) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    let name = key_text(&k);
                    if !names.insert(name.clone()) {
                        self.diags.push(
                            Diagnostic::error(
                                Code::DuplicateKey,
                                format!("`{name}` is given twice in this mapping"),
                            )
                            .at(self.file, k.span.clone())
                            .help("remove one of them"),
                        );
                    } else {
                        entries.push((k, node));
                    }
                }
            },
        }
    }

    fn scalar(
        &mut self,
        value: &str,
        style: ScalarStyle,
        tag: Option<&saphyr_parser::Tag>,
        span: Range<usize>,
    ) -> Kind {
        let is_key = self.is_key_position();
        let interpolated;
        let value = if is_key || self.in_script_value() {
            value
        } else {
            match interpolate(value, self.env) {
                Ok(Some(s)) => {
                    interpolated = s;
                    &interpolated
                }
                Ok(None) => value,
                Err(problems) => {
                    for problem in problems {
                        let (Problem::Unset(name) | Problem::ShortSecret(name)) = &problem;
                        // Point at the reference inside the scalar when it is written there literally.
                        let source = &self.text[span.clone()];
                        let at = [format!("${{{name}"), format!("${{secret:{name}")]
                            .iter()
                            .find_map(|r| source.find(r.as_str()).map(|i| (i, r.len())))
                            .map(|(i, n)| span.start + i..span.start + i + n)
                            .unwrap_or(span.clone());
                        let d = match problem {
                            Problem::Unset(name) => Diagnostic::error(
                                Code::UnsetVariable,
                                format!("environment variable `{name}` is not set"),
                            )
                            .help(format!("set it, or give a default: `${{{name}:-default}}`")),
                            Problem::ShortSecret(name) => Diagnostic::error(
                                Code::InvalidValue,
                                format!(
                                    "the secret in `{name}` is shorter than {} characters: it could not be told apart from other text to be masked",
                                    crate::secrets::MIN_LEN
                                ),
                            )
                            .help("use a longer secret"),
                        };
                        self.diags.push(d.at(self.file, at));
                    }
                    value
                }
            }
        };
        // A tag of the user's own (`when: !record.paid`) is never meant:
        // the pipeline format has none, and the value would be lost.
        if let Some(t) = tag
            && t.handle != "tag:yaml.org,2002:"
            && t.suffix != "str"
        {
            let written = format!("{}{}", t.handle, t.suffix);
            // The scalar's span starts at the tag, or after it.
            let before = &self.text[..(span.start + written.len()).min(self.text.len())];
            let at = before
                .rfind(&written)
                .map_or(span.clone(), |i| i..i + written.len());
            self.diags.push(
                Diagnostic::error(
                    Code::YamlSyntax,
                    format!("YAML reads `{written}` as a tag, not as part of the value, which is left empty"),
                )
                .at(self.file, at)
                .help(format!("quote the value: `'{written}{}'`", value.trim())),
            );
        }
        let tagged_str = tag.is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str")
            || tag.is_some_and(|t| t.suffix == "str");
        if style != ScalarStyle::Plain || tagged_str {
            return Kind::Str(value.to_owned());
        }
        resolve_plain(value)
    }
}

/// Types a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(s: &str) -> Kind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = s.parse::<i64>()
    {
        return Kind::Int(i);
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Kind::Int(i);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Kind::Int(i);
    }
    let looks_numeric = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric && let Ok(f) = s.parse::<f64>() {
        return Kind::Float(f);
    }
    Kind::Str(s.to_owned())
}

impl<'input> SpannedEventReceiver<'input> for Builder<'_> {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        let range = self.range(&span);
        match ev {
            Event::DocumentStart(_) => self.documents += 1,
            Event::Scalar(value, style, anchor, tag) => {
                let kind = self.scalar(&value, style, tag.as_deref(), range.clone());
                self.add(
                    Node {
                        kind,
                        span: range,
                        style: Some(style),
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                start: range.start,
                anchor,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                names: HashSet::new(),
                key: None,
                start: range.start,
                anchor,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (kind, start, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        start,
                        anchor,
                    }) => (Kind::Seq(items), start, anchor),
                    Some(Frame::Map {
                        entries,
                        start,
                        anchor,
                        ..
                    }) => (Kind::Map(entries), start, anchor),
                    None => return,
                };
                // A block collection's end event sits at the next token; trim the
                // trailing white space so the span covers only the collection.
                let end = range.end.max(start);
                let end = start + self.text[start..end].trim_end().len();
                self.add(
                    Node {
                        kind,
                        span: start..end,
                        style: None,
                    },
                    anchor,
                );
            }
            Event::Alias(id) => {
                let null = Node {
                    kind: Kind::Null,
                    span: range.clone(),
                    style: None,
                };
                let node = match self.anchors.get(&id) {
                    Some((_, n)) if self.aliased + n > MAX_ALIAS_VALUES => {
                        if self.aliased <= MAX_ALIAS_VALUES {
                            self.diags.push(
                                Diagnostic::error(
                                    Code::YamlSyntax,
                                    format!(
                                        "aliases expand to more than {MAX_ALIAS_VALUES} values in all"
                                    ),
                                )
                                .at(self.file, range.clone())
                                .help("write the values out, or use fewer nested aliases"),
                            );
                        }
                        // Counted, so the diagnostic is given once.
                        self.aliased = MAX_ALIAS_VALUES + 1;
                        null
                    }
                    Some((node, n)) => {
                        self.aliased += n;
                        let mut node = node.clone();
                        node.span = range.clone();
                        node
                    }
                    None => null,
                };
                self.add(node, 0);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Option<Value>, SpanMap, Diagnostics) {
        let mut diags = Diagnostics::default();
        let file = diags.sources.add("p.yaml", text);
        let env = Env::from_pairs([("HOME_DIR", "/h")]);
        let node = parse(text, file, &env, &mut diags);
        let mut spans = SpanMap::new();
        let value = node.map(|n| to_json(&n, &mut spans));
        (value, spans, diags)
    }

    #[test]
    fn types_plain_scalars_and_keeps_quoted_ones_strings() {
        let (v, _, d) = load("a: 1\nb: '1'\nc: true\nd: 1.5\ne: ~\nf: hello\ng: -3\n");
        assert!(d.list.is_empty());
        assert_eq!(
            v.unwrap(),
            serde_json::json!({"a": 1, "b": "1", "c": true, "d": 1.5, "e": null, "f": "hello", "g": -3})
        );
    }

    #[test]
    fn records_spans_of_keys_and_values() {
        let text = "sinks:\n  archive:\n    bukcet: x\n";
        let (_, spans, _) = load(text);
        let o = &spans["/sinks/archive/bukcet"];
        assert_eq!(&text[o.key.clone().unwrap()], "bukcet");
        assert_eq!(&text[o.value.clone()], "x");
    }

    #[test]
    fn interpolates_values_but_not_scripts() {
        let (v, _, d) = load("path: ${HOME_DIR}/x\nscript: '`${a}`'\nn: ${UNSET:-7}\n");
        assert!(d.list.is_empty());
        assert_eq!(
            v.unwrap(),
            serde_json::json!({"path": "/h/x", "script": "`${a}`", "n": 7})
        );
    }

    #[test]
    fn reports_unset_variables_at_their_position() {
        let text = "path: out/${NOPE}.jsonl\n";
        let (_, _, d) = load(text);
        assert_eq!(d.list.len(), 1);
        let (_, range) = d.list[0].span.clone().unwrap();
        assert_eq!(&text[range], "${NOPE");
    }

    #[test]
    fn an_alias_bomb_is_an_error_not_a_billion_values() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let (v, _, d) = load(&text);
        assert!(v.is_some());
        let errors: Vec<&str> = d.list.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            errors,
            vec!["aliases expand to more than 100000 values in all"]
        );
        // Aliases within the bound work.
        let (v, _, d) = load("a: &x [1, 2]\nb: *x\n");
        assert!(d.list.is_empty());
        assert_eq!(v.unwrap(), serde_json::json!({"a": [1, 2], "b": [1, 2]}));
    }

    #[test]
    fn a_duplicate_among_40000_keys_is_found() {
        let mut text: String = (0..40_000).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k17: again\n");
        let (_, _, d) = load(&text);
        let errors: Vec<&str> = d.list.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(errors, vec!["`k17` is given twice in this mapping"]);
    }

    #[test]
    fn reports_duplicate_keys_and_syntax_errors() {
        let (_, _, d) = load("a: 1\na: 2\n");
        assert_eq!(d.list[0].code, Code::DuplicateKey);
        let (v, _, d) = load("a: [1, 2\n");
        assert!(v.is_none());
        assert_eq!(d.list[0].code, Code::YamlSyntax);
    }
}
