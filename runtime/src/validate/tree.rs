//! The record's parsed [`Tree`] as a JSON representation the schema
//! validator reads in place: what it reports is what it reports for the
//! same document as a `serde_json::Value` (a unit test compares them).

use std::borrow::Cow;

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, Node as JsonNode, NodeIdentity, Object, cmp};
use serde_json::Value;

use crate::record::tree::{At, Items, Members, Node, Tree};

/// Trees, as the validator's representation.
pub struct TreeJson;

impl Json for TreeJson {
    type Node<'a> = At<'a>;
    type PreparedKey = String;
    type StringBuffer = Tree;

    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(buffer: &mut Tree, string: &str, f: impl FnOnce(At<'_>) -> T) -> T {
        buffer.string(string);
        f(buffer.root(string))
    }
}

/// An object node.
#[derive(Clone, Copy)]
pub struct Obj<'a> {
    at: At<'a>,
    start: u32,
    len: u32,
}

/// An array node.
#[derive(Clone, Copy)]
pub struct Arr<'a> {
    at: At<'a>,
    start: u32,
    len: u32,
}

impl<'a> JsonNode<'a, TreeJson> for At<'a> {
    type Object = Obj<'a>;
    type Array = Arr<'a>;
    type Number = &'a serde_json::Number;

    fn as_object(&self) -> Option<Obj<'a>> {
        match self.node() {
            Node::Object { start, len } => Some(Obj {
                at: *self,
                start: *start,
                len: *len,
            }),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<Arr<'a>> {
        match self.node() {
            Node::Array { start, len } => Some(Arr {
                at: *self,
                start: *start,
                len: *len,
            }),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.node() {
            Node::Str(t) => Some(Cow::Borrowed(self.str(*t))),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a serde_json::Number> {
        match self.node() {
            Node::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.node() {
            Node::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.node(), Node::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.node() {
            Node::Null => JsonType::Null,
            Node::Bool(_) => JsonType::Boolean,
            Node::Number(_) => JsonType::Number,
            Node::Str(_) => JsonType::String,
            Node::Array { .. } => JsonType::Array,
            Node::Object { .. } => JsonType::Object,
        }
    }

    /// `const` and `enum`: a string, a boolean or `null` without building
    /// a value; a number as the validator compares numbers.
    fn equals_value(&self, expected: &Value) -> bool {
        match (self.node(), expected) {
            (Node::Str(t), Value::String(s)) => self.str(*t) == s,
            (Node::Str(_) | Node::Bool(_) | Node::Null, _) => match (self.node(), expected) {
                (Node::Bool(b), Value::Bool(e)) => b == e,
                (Node::Null, Value::Null) => true,
                _ => false,
            },
            (Node::Number(n), Value::Number(e)) => cmp::equal_numbers(&n, e),
            (Node::Number(_), _) => false,
            _ => cmp::equal(&self.to_value(), expected),
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(At::to_value(self))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::tagged(
            std::ptr::from_ref::<Tree>(self.tree) as usize,
            self.index,
        ))
    }
}

impl<'a> Object<'a, TreeJson> for Obj<'a> {
    type Node = At<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.len as usize
    }

    fn get(&self, key: &String) -> Option<At<'a>> {
        self.at.member(self.start, self.len, key)
    }

    fn members(&self) -> Self::MembersIter {
        self.at.members(self.start, self.len)
    }
}

impl<'a> Array<'a, TreeJson> for Arr<'a> {
    type Node = At<'a>;
    type ElementsIter = Items<'a>;

    fn len(&self) -> usize {
        self.len as usize
    }

    fn elements(&self) -> Self::ElementsIter {
        self.at.items(self.start, self.len)
    }
}
