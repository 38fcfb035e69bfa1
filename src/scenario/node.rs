//! A YAML document as a tree of located [`Node`]s, and serde deserialization
//! from that tree.
//!
//! serde-saphyr parses the text once into `Node`s that remember their line and
//! column. The loader then deserializes each section (each model, agent,
//! strategy...) from its own subtree with [`from_node`], so one bad entry
//! yields one diagnostic and the others are still checked. Errors carry the
//! location of the innermost node that failed, which is what a user needs to
//! see: the misspelled key, the value of the wrong type.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::scenario::diagnostic::{SourceFile, Span};

/// One YAML value with the position it starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys keep their own positions, for "unknown key" diagnostics.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Parse a whole YAML document. An empty document is a null node.
    pub fn parse(source: &SourceFile) -> Result<Node, (Span, String)> {
        if source.text.trim().is_empty() {
            return Ok(Node {
                span: Span::new(1, 1),
                value: Value::Null,
            });
        }
        // YAML 1.2 booleans only: `n: 8` is the key "n", not `false`.
        let options = serde_saphyr::options! { strict_booleans: true };
        serde_saphyr::from_str_with_options::<Node>(&source.text, options).map_err(|e| {
            let span = e
                .location()
                .map(|l| Span::new(l.line() as usize, l.column() as usize))
                .unwrap_or(Span::new(1, 1));
            (span, yaml_error_message(&e))
        })
    }

    /// A short word for the node's type, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Scalars as the text a template or a CSV cell would show.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The node as JSON (for task inputs and stored scenario fragments).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// serde-saphyr's message without its own location suffix and snippet: we
/// print the location in our own `path:line:col` form.
fn yaml_error_message(e: &serde_saphyr::Error) -> String {
    let opts = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
    let text = e.render_with_options(opts);
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let trimmed = match first.rfind(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    format!("invalid YAML: {}", trimmed.trim_end_matches('.'))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<Value>::deserialize(d)?;
        let loc = spanned.referenced;
        Ok(Node {
            span: Span::new(loc.line() as usize, loc.column() as usize),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                Value::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v)
                    .map(Value::Int)
                    .or(Ok(Value::Float(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(n) = a.next_element::<Node>()? {
                    items.push(n);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = a.next_key::<Node>()? {
                    let v = a.next_value::<Node>()?;
                    entries.push((k, v));
                }
                Ok(Value::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A deserialization error at a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeError {
    pub span: Option<Span>,
    pub message: String,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl de::Error for NodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NodeError {
            span: None,
            message: msg.to_string(),
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let hint = crate::scenario::diagnostic::did_you_mean(field, expected.iter().copied());
        Self::custom(format!(
            "unknown key `{field}` (expected one of: {}){hint}",
            expected.join(", ")
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let hint = crate::scenario::diagnostic::did_you_mean(variant, expected.iter().copied());
        Self::custom(format!(
            "unknown value `{variant}` (expected one of: {}){hint}",
            expected.join(", ")
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format!("missing required key `{field}`"))
    }
}

impl NodeError {
    fn at(mut self, span: Span) -> Self {
        self.span.get_or_insert(span);
        self
    }
}

/// Deserialize `T` from a node; the error points at the innermost failing node.
pub fn from_node<'a, T: Deserialize<'a>>(node: &'a Node) -> Result<T, NodeError> {
    T::deserialize(node).map_err(|e| e.at(node.span))
}

/// The message serde would print for a type mismatch, in our wording.
fn invalid_type(node: &Node, exp: &dyn de::Expected) -> NodeError {
    NodeError {
        span: Some(node.span),
        message: format!("expected {exp}, found {}", node.kind()),
    }
}

impl<'de> Deserializer<'de> for &'de Node {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        let r = match &self.value {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Int(i) => v.visit_i64(*i),
            Value::Float(f) => v.visit_f64(*f),
            Value::Str(s) => v.visit_borrowed_str(s),
            Value::Seq(items) => v.visit_seq(NodeSeq {
                iter: items.iter(),
                len: items.len(),
            }),
            Value::Map(entries) => v.visit_map(NodeMap {
                iter: entries.iter(),
                value: None,
            }),
        };
        r.map_err(|e| e.at(self.span))
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        match self.value {
            Value::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        // Scalars read as strings where a string is wanted: `id: 12` is the id "12".
        match &self.value {
            Value::Str(s) => v.visit_borrowed_str(s),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                v.visit_string(self.scalar_text().unwrap_or_default())
            }
            _ => Err(invalid_type(self, &v)),
        }
        .map_err(|e| e.at(self.span))
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        self.deserialize_string(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        match &self.value {
            Value::Int(i) => v.visit_f64(*i as f64),
            Value::Float(f) => v.visit_f64(*f),
            _ => Err(invalid_type(self, &v)),
        }
        .map_err(|e| e.at(self.span))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        self.deserialize_f64(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, NodeError> {
        match &self.value {
            Value::Str(s) => v.visit_enum(s.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => v.visit_enum(NodeEnum {
                key: &entries[0].0,
                value: &entries[0].1,
            }),
            _ => Err(NodeError {
                span: Some(self.span),
                message: format!(
                    "expected a name or a mapping with one key, found {}",
                    self.kind()
                ),
            }),
        }
        .map_err(|e: NodeError| e.at(self.span))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, NodeError> {
        if name == LOCATED_MARKER {
            return v
                .visit_seq(LocatedAccess {
                    node: self,
                    step: 0,
                })
                .map_err(|e| e.at(self.span));
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier
    }
}

struct NodeSeq<'de> {
    iter: std::slice::Iter<'de, Node>,
    len: usize,
}

impl<'de> SeqAccess<'de> for NodeSeq<'de> {
    type Error = NodeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        match self.iter.next() {
            Some(n) => seed.deserialize(n).map(Some).map_err(|e| e.at(n.span)),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

struct NodeMap<'de> {
    iter: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de Node>,
}

impl<'de> MapAccess<'de> for NodeMap<'de> {
    type Error = NodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NodeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k).map(Some).map_err(|e| e.at(k.span))
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, NodeError> {
        let v = self
            .value
            .take()
            .expect("next_value called before next_key");
        seed.deserialize(v).map_err(|e| e.at(v.span))
    }
}

struct NodeEnum<'de> {
    key: &'de Node,
    value: &'de Node,
}

impl<'de> de::EnumAccess<'de> for NodeEnum<'de> {
    type Error = NodeError;
    type Variant = &'de Node;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, &'de Node), NodeError> {
        let name = seed
            .deserialize(self.key)
            .map_err(|e| e.at(self.key.span))?;
        Ok((name, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for &'de Node {
    type Error = NodeError;
    fn unit_variant(self) -> Result<(), NodeError> {
        match self.value {
            Value::Null => Ok(()),
            _ => Err(NodeError {
                span: Some(self.span),
                message: format!("expected no value here, found {}", self.kind()),
            }),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, NodeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, NodeError> {
        self.deserialize_any(v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, NodeError> {
        self.deserialize_any(v)
    }
}

const LOCATED_MARKER: &str = "__crucible_located";

/// A value together with where it was written, for diagnostics that come
/// after deserialization (undefined references, bad regexes, templates).
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub span: Span,
    pub value: T,
}

impl<T> Located<T> {
    pub fn new(span: Span, value: T) -> Self {
        Located { span, value }
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Feeds `Located`'s visitor the node's position, then the node itself.
struct LocatedAccess<'de> {
    node: &'de Node,
    step: u8,
}

impl<'de> SeqAccess<'de> for LocatedAccess<'de> {
    type Error = NodeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        self.step += 1;
        match self.step {
            1 => {
                let pos = [self.node.span.line as u64, self.node.span.col as u64];
                seed.deserialize(serde::de::value::SeqDeserializer::new(pos.into_iter()))
                    .map(Some)
            }
            2 => seed.deserialize(self.node).map(Some),
            _ => Ok(None),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Located<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a located value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Located<T>, A::Error> {
                let [line, col]: [u64; 2] = a
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("missing position"))?;
                let value = a
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("missing value"))?;
                Ok(Located {
                    span: Span::new(line as usize, col as usize),
                    value,
                })
            }
            // Outside the node deserializer (e.g. JSON) there is no position.
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Located<T>, D::Error> {
                Ok(Located {
                    span: Span::default(),
                    value: T::deserialize(d)?,
                })
            }
        }
        d.deserialize_newtype_struct(LOCATED_MARKER, V(std::marker::PhantomData))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Located<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(g)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(text: &str) -> Node {
        Node::parse(&SourceFile::new("t.yaml", text)).unwrap()
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Agent {
        model: Located<String>,
        #[serde(default)]
        #[allow(dead_code)]
        n: Vec<u32>,
    }

    #[test]
    fn nodes_remember_positions() {
        let n = parse("a:\n  b: 1\n  c: [x, y]\n");
        let a = n.get("a").unwrap();
        assert_eq!(a.get("b").unwrap().span, Span::new(2, 6));
        assert_eq!(a.get("c").unwrap().span, Span::new(3, 6));
    }

    #[test]
    fn unknown_key_points_at_the_key() {
        let n = parse("x:\n  model: m\n  modle: m\n");
        let e = from_node::<BTreeMap<String, Agent>>(&n).unwrap_err();
        assert_eq!(e.span, Some(Span::new(3, 3)));
        assert!(e.message.contains("did you mean `model`"), "{}", e.message);
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let n = parse("model: m\nn: [1, two]\n");
        let e = from_node::<Agent>(&n).unwrap_err();
        assert_eq!(e.span, Some(Span::new(2, 8)));
    }

    #[test]
    fn located_values_keep_their_span() {
        let n = parse("model: m\n");
        let a: Agent = from_node(&n).unwrap();
        assert_eq!(a.model.span, Span::new(1, 8));
        assert_eq!(a.model.value, "m");
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = Node::parse(&SourceFile::new("t.yaml", "a: [1, 2\nb: 3\n")).unwrap_err();
        assert!(e.0.line >= 1);
        assert!(e.1.starts_with("invalid YAML"), "{}", e.1);
    }
}
