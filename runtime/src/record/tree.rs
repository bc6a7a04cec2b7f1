//! A record's JSON, parsed into one flat tree.
//!
//! The tree keeps its nodes in vectors a worker reuses from record to
//! record, and its strings as places in the record's text (only a string
//! with escapes is copied, once, into the tree's own buffer), so parsing a
//! record allocates nothing once the vectors have grown. It reads exactly
//! as `serde_json::Value` does: the same parser, so the same errors; an
//! object's keys in sorted order, and the last of duplicate keys kept.
//! Validation reads it in place ([`crate::validate`]) and the transform
//! stage builds its Rhai values from it.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// A parsed record.
#[derive(Debug, Default)]
pub struct Tree {
    nodes: Vec<Node>,
    /// Array items, as node indexes; an array is a range of these.
    items: Vec<u32>,
    /// Object members, sorted by key within each object.
    members: Vec<(Text, u32)>,
    /// Strings that had escapes, unescaped.
    escaped: String,
    /// Items and members of the containers being parsed.
    item_stack: Vec<u32>,
    member_stack: Vec<(Text, u32)>,
    root: u32,
    /// What the document holds: string bytes (of values), array items and
    /// object members; `None` once a duplicate key dropped a value.
    counts: Option<Counts>,
}

/// What a document holds, counted as it is parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Bytes of string values (not keys).
    pub string_bytes: usize,
    /// Array items, at every depth.
    pub array_items: usize,
    /// Object members, at every depth.
    pub map_entries: usize,
}

/// One JSON value.
#[derive(Debug, Clone)]
pub enum Node {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json` reads it.
    Number(Number),
    /// A string.
    Str(Text),
    /// An array: `len` items from `start` in the items.
    Array {
        /// First item.
        start: u32,
        /// How many.
        len: u32,
    },
    /// An object: `len` members from `start` in the members.
    Object {
        /// First member.
        start: u32,
        /// How many.
        len: u32,
    },
}

/// Where a string is: in the record's text, or in the tree's buffer of
/// unescaped strings.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    start: usize,
    len: usize,
    escaped: bool,
}

/// A node of a tree, with the text its strings are in.
#[derive(Clone, Copy)]
pub struct At<'a> {
    /// The tree.
    pub tree: &'a Tree,
    /// The record's text.
    pub text: &'a str,
    /// The node's index.
    pub index: u32,
}

impl Tree {
    /// Parses `text` as one JSON document, replacing what the tree held;
    /// the error is `serde_json`'s own.
    pub fn parse(&mut self, text: &str) -> Result<(), serde_json::Error> {
        self.clear();
        let mut de = serde_json::Deserializer::from_str(text);
        let root = Seed { tree: self, text }.deserialize(&mut de)?;
        de.end()?;
        self.root = root;
        Ok(())
    }

    /// Makes the tree one string: the whole of `text`.
    pub fn string(&mut self, text: &str) {
        self.clear();
        self.count(|c| c.string_bytes += text.len());
        self.root = self.push(Node::Str(Text {
            start: 0,
            len: text.len(),
            escaped: false,
        }));
    }

    fn clear(&mut self) {
        self.nodes.clear();
        self.items.clear();
        self.members.clear();
        self.escaped.clear();
        self.item_stack.clear();
        self.member_stack.clear();
        self.counts = Some(Counts::default());
    }

    fn count(&mut self, f: impl FnOnce(&mut Counts)) {
        if let Some(c) = &mut self.counts {
            f(c);
        }
    }

    fn push(&mut self, node: Node) -> u32 {
        self.nodes.push(node);
        index(self.nodes.len() - 1)
    }

    /// The root node of the tree, over `text` (the text it was parsed from).
    pub fn root<'a>(&'a self, text: &'a str) -> At<'a> {
        At {
            tree: self,
            text,
            index: self.root,
        }
    }

    fn escape(&mut self, s: &str) -> Text {
        let start = self.escaped.len();
        self.escaped.push_str(s);
        Text {
            start,
            len: s.len(),
            escaped: true,
        }
    }

    /// Ends an object whose members are on the stack from `mark`: sorted
    /// by key, the last of equal keys kept, as a map keeps them.
    fn end_object(&mut self, text: &str, mark: usize) -> Node {
        let Tree {
            member_stack,
            members,
            escaped,
            counts,
            ..
        } = self;
        let key = |t: &Text| str_in(escaped, text, *t);
        let segment = &mut member_stack[mark..];
        let start = index(members.len());
        // Most objects are written with their keys in order, once each.
        if segment.is_sorted_by(|a, b| cmp_keys(key(&a.0), key(&b.0)).is_lt()) {
            members.extend_from_slice(segment);
            member_stack.truncate(mark);
            let len = index(members.len()) - start;
            if let Some(c) = counts {
                c.map_entries += len as usize;
            }
            return Node::Object { start, len };
        }
        // Stable: of equal keys, the later stays later.
        segment.sort_by(|a, b| cmp_keys(key(&a.0), key(&b.0)));
        for (i, m) in segment.iter().enumerate() {
            let next_same = segment
                .get(i + 1)
                .is_some_and(|next| key(&next.0) == key(&m.0));
            if !next_same {
                members.push(*m);
            }
        }
        let len = index(members.len()) - start;
        if len as usize == segment.len() {
            if let Some(c) = counts {
                c.map_entries += len as usize;
            }
        } else {
            // A duplicate's value is in the tree but not in the document.
            *counts = None;
        }
        member_stack.truncate(mark);
        Node::Object { start, len }
    }

    /// The string `t` is, in `text` or in the tree.
    #[inline]
    pub fn str_of<'a>(&'a self, text: &'a str, t: Text) -> &'a str {
        str_in(&self.escaped, text, t)
    }
}

/// Two keys in the order `str`'s `cmp` gives, compared where they are: keys
/// are short and most differ in their first bytes, where a call to
/// `memcmp` for each comparison took longer than the comparison.
#[inline]
pub fn cmp_keys(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

#[inline]
fn str_in<'a>(escaped: &'a str, text: &'a str, t: Text) -> &'a str {
    if t.escaped {
        &escaped[t.start..t.start + t.len]
    } else {
        &text[t.start..t.start + t.len]
    }
}

fn index(i: usize) -> u32 {
    // A record's nodes are bounded by its bytes, which a source bounds far below this.
    u32::try_from(i).expect("a record has fewer than 2^32 values")
}

impl<'a> At<'a> {
    /// The node.
    #[inline]
    pub fn node(&self) -> &'a Node {
        &self.tree.nodes[self.index as usize]
    }

    #[inline]
    fn at(&self, index: u32) -> At<'a> {
        At { index, ..*self }
    }

    /// What the node holds, when it is the whole document and that was
    /// counted while parsing.
    pub fn counts(&self) -> Option<Counts> {
        self.tree.counts.filter(|_| self.index == self.tree.root)
    }

    /// Node `index` of the same tree.
    #[inline]
    pub fn with_index(&self, index: u32) -> At<'a> {
        self.at(index)
    }

    /// Entry `k` of the tree's array items (an array's items are
    /// `start..start + len` of these).
    #[inline]
    pub fn item(&self, k: u32) -> At<'a> {
        self.at(self.tree.items[k as usize])
    }

    /// A string's text.
    #[inline]
    pub fn str(&self, t: Text) -> &'a str {
        self.tree.str_of(self.text, t)
    }

    /// Appends the string `t` as JSON, as serde_json writes it. A string
    /// that was in the record's text without escapes is copied as it is:
    /// a JSON string cannot hold a character JSON escapes unescaped.
    pub fn write_json_str(&self, out: &mut Vec<u8>, t: Text) {
        let s = self.str(t);
        if t.escaped {
            // Writing to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, s);
        } else {
            out.reserve(s.len() + 2);
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
    }

    /// An array's items.
    pub fn items(&self, start: u32, len: u32) -> Items<'a> {
        Items {
            at: *self,
            inner: self.tree.items[start as usize..(start + len) as usize].iter(),
        }
    }

    /// An object's members, in key order.
    pub fn members(&self, start: u32, len: u32) -> Members<'a> {
        Members {
            at: *self,
            inner: self.tree.members[start as usize..(start + len) as usize].iter(),
        }
    }

    /// The member `key` of an object's members.
    #[inline]
    pub fn member(&self, start: u32, len: u32, key: &str) -> Option<At<'a>> {
        let members = &self.tree.members[start as usize..(start + len) as usize];
        members
            .binary_search_by(|(k, _)| cmp_keys(self.str(*k), key))
            .ok()
            .map(|i| self.at(members[i].1))
    }

    /// The node as a `serde_json` value.
    pub fn to_value(&self) -> Value {
        match self.node() {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::Str(t) => Value::String(self.str(*t).to_owned()),
            Node::Array { start, len } => {
                Value::Array(self.items(*start, *len).map(|i| i.to_value()).collect())
            }
            Node::Object { start, len } => Value::Object(
                self.members(*start, *len)
                    .map(|(k, v)| (k.to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// An array's items.
pub struct Items<'a> {
    at: At<'a>,
    inner: std::slice::Iter<'a, u32>,
}

impl<'a> Iterator for Items<'a> {
    type Item = At<'a>;

    fn next(&mut self) -> Option<At<'a>> {
        self.inner.next().map(|&i| self.at.at(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Items<'_> {}

/// An object's members: key and value, in key order.
pub struct Members<'a> {
    at: At<'a>,
    inner: std::slice::Iter<'a, (Text, u32)>,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, At<'a>);

    fn next(&mut self) -> Option<(&'a str, At<'a>)> {
        self.inner
            .next()
            .map(|&(k, i)| (self.at.str(k), self.at.at(i)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Members<'_> {}

impl<'a> Members<'a> {
    /// The members with their keys as places ([`At::write_json_str`] writes them).
    pub fn with_texts(self) -> impl Iterator<Item = (Text, At<'a>)> {
        let at = self.at;
        self.inner.map(move |&(k, i)| (k, at.at(i)))
    }
}

/// Parses one value into the tree; gives its node's index.
struct Seed<'t, 's> {
    tree: &'t mut Tree,
    text: &'s str,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = u32;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_any(self)
    }
}

impl Seed<'_, '_> {
    /// A string the parser lent from the record's text, as its place there.
    fn borrowed(&mut self, s: &str) -> Text {
        let offset = (s.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
        if offset <= self.text.len() && offset + s.len() <= self.text.len() {
            Text {
                start: offset,
                len: s.len(),
                escaped: false,
            }
        } else {
            self.tree.escape(s)
        }
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = u32;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<u32, E> {
        Ok(self.tree.push(Node::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<u32, E> {
        Ok(self.tree.push(Node::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<u32, E> {
        Ok(self.tree.push(Node::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<u32, E> {
        // As `serde_json::Value` reads it.
        Ok(self
            .tree
            .push(Number::from_f64(v).map_or(Node::Null, Node::Number)))
    }

    fn visit_borrowed_str<E>(mut self, v: &'de str) -> Result<u32, E> {
        self.tree.count(|c| c.string_bytes += v.len());
        let t = self.borrowed(v);
        Ok(self.tree.push(Node::Str(t)))
    }

    fn visit_str<E>(self, v: &str) -> Result<u32, E> {
        self.tree.count(|c| c.string_bytes += v.len());
        let t = self.tree.escape(v);
        Ok(self.tree.push(Node::Str(t)))
    }

    fn visit_unit<E>(self) -> Result<u32, E> {
        Ok(self.tree.push(Node::Null))
    }

    fn visit_none<E>(self) -> Result<u32, E> {
        Ok(self.tree.push(Node::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u32, A::Error> {
        let mark = self.tree.item_stack.len();
        while let Some(i) = seq.next_element_seed(Seed {
            tree: &mut *self.tree,
            text: self.text,
        })? {
            self.tree.item_stack.push(i);
        }
        let start = index(self.tree.items.len());
        let len = index(self.tree.item_stack.len() - mark);
        let tree = &mut *self.tree;
        tree.count(|c| c.array_items += len as usize);
        tree.items.extend(tree.item_stack.drain(mark..));
        Ok(tree.push(Node::Array { start, len }))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u32, A::Error> {
        let mark = self.tree.member_stack.len();
        while let Some(key) = map.next_key_seed(Key(Seed {
            tree: &mut *self.tree,
            text: self.text,
        }))? {
            let value = map.next_value_seed(Seed {
                tree: &mut *self.tree,
                text: self.text,
            })?;
            self.tree.member_stack.push((key, value));
        }
        let node = self.tree.end_object(self.text, mark);
        Ok(self.tree.push(node))
    }
}

/// Parses an object's key: a string, as [`Seed`] places it, without a node.
struct Key<'t, 's>(Seed<'t, 's>);

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = Text;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Text, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = Text;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(mut self, v: &'de str) -> Result<Text, E> {
        Ok(self.0.borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Text, E> {
        Ok(self.0.tree.escape(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads as `serde_json::Value` reads, errors included.
    #[test]
    fn it_reads_what_serde_json_reads() {
        let mut tree = Tree::default();
        for text in [
            r#"{"b": 1, "a": [true, null, 2.5, -3, 18446744073709551615], "c": {"x": "y\n\u00e9"}}"#,
            r#"{"k": 1, "k": 2, "a": 0, "k": 3}"#,
            r#""just a string""#,
            r#"[]"#,
            r#"{}"#,
            r#"  7  "#,
            r#"1e400"#,
            r#"{"esc\"aped": "a\\b", "plain": "ok"}"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"[1, 2"#,
            r#"{1: 2}"#,
            r#"{"a": 1} x"#,
            "",
            &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
        ] {
            let expected = serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
            let got = tree
                .parse(text)
                .map(|()| tree.root(text).to_value())
                .map_err(|e| e.to_string());
            assert_eq!(got, expected, "{text}");
        }
    }

    #[test]
    fn keys_compare_as_texts_do() {
        let mut rng = fastrand::Rng::with_seed(3);
        let chars = ['a', 'b', 'z', 'A', '_', '0', 'é', '\u{1F600}', '\0'];
        let key = |rng: &mut fastrand::Rng| -> String {
            (0..rng.usize(0..6))
                .map(|_| chars[rng.usize(..chars.len())])
                .collect()
        };
        for _ in 0..100_000 {
            let (a, b) = (key(&mut rng), key(&mut rng));
            assert_eq!(cmp_keys(&a, &b), a.cmp(&b), "{a:?} {b:?}");
            assert_eq!(cmp_keys(&a, &a), std::cmp::Ordering::Equal);
        }
    }

    #[test]
    fn members_are_found_by_key() {
        let mut tree = Tree::default();
        let text = r#"{"zeta": 1, "alpha": 2, "mid": {"q": 3}}"#;
        tree.parse(text).unwrap();
        let root = tree.root(text);
        let Node::Object { start, len } = root.node() else {
            panic!("not an object");
        };
        let keys: Vec<_> = root.members(*start, *len).map(|(k, _)| k).collect();
        assert_eq!(keys, ["alpha", "mid", "zeta"]);
        assert!(matches!(
            root.member(*start, *len, "zeta").unwrap().node(),
            Node::Number(n) if n.as_i64() == Some(1)
        ));
        assert!(root.member(*start, *len, "nope").is_none());
    }
}
