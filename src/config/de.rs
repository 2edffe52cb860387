//! A serde `Deserializer` over the spanned YAML tree, so the raw structs can
//! be plain `#[derive(Deserialize)]` types while every error still knows the
//! span it belongs to.
//!
//! Two wrapper types cooperate with it: [`Spanned`] records the span of a
//! value, and [`Each`] keeps going after an error inside one value (one
//! service, one command), so a file with several mistakes reports them all.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use miette::SourceSpan;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

use super::yaml::{Node, Value};
use crate::diag::suggest;

const SPANNED: &str = "$orch::Spanned";
const EACH: &str = "$orch::Each";

/// An error found while turning the tree into raw structs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub message: String,
    pub span: Option<SourceSpan>,
    pub help: Option<String>,
    /// The required key whose absence this error reports.
    pub missing: Option<&'static str>,
}

impl DeError {
    fn or_span(mut self, span: SourceSpan) -> Self {
        self.span.get_or_insert(span);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            span: None,
            help: None,
            missing: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "expected {}, found {}",
            expected(exp),
            describe(&unexp)
        ))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "{} is not valid here: expected {}",
            describe(&unexp),
            expected(exp)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        unknown_key(field, expected)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut help = format!("use one of: {}", expected.join(", "));
        if let Some(close) = suggest(variant, expected.iter().copied()) {
            help = format!("did you mean `{close}`?");
        }
        Self {
            message: format!("`{variant}` is not a valid value here"),
            span: None,
            help: Some(help),
            missing: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            missing: Some(field),
            ..Self::custom(format_args!("missing key `{field}`"))
        }
    }
}

/// What serde's visitors expect, in the words of a YAML file rather than of
/// Rust types (`u32`, `a map`, `struct RawCommand`).
fn expected(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number of 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "a map" => "a mapping".to_owned(),
        "a sequence" => "a list".to_owned(),
        _ if text.starts_with("struct ") => "a mapping".to_owned(),
        _ => text,
    }
}

fn describe(unexp: &de::Unexpected<'_>) -> String {
    match unexp {
        de::Unexpected::Unit | de::Unexpected::Option => "nothing".to_owned(),
        de::Unexpected::Seq => "a list".to_owned(),
        de::Unexpected::Map => "a mapping".to_owned(),
        de::Unexpected::Str(s) => format!("`{s}`"),
        other => other.to_string(),
    }
}

/// The error for a key that is not one of `expected`, with the closest one as a suggestion.
pub fn unknown_key<S: AsRef<str>>(field: &str, expected: &[S]) -> DeError {
    let names = || expected.iter().map(AsRef::as_ref);
    let help = match suggest(field, names()) {
        Some(close) => format!("did you mean `{close}`?"),
        None => format!(
            "the keys allowed here are: {}",
            names().collect::<Vec<_>>().join(", ")
        ),
    };
    DeError {
        message: format!("unknown key `{field}`"),
        span: None,
        help: Some(help),
        missing: None,
    }
}

/// Errors set aside by [`Each`] while the rest of the file is read.
#[derive(Default)]
pub struct Sink(RefCell<Vec<DeError>>);

impl Sink {
    pub fn into_errors(self) -> Vec<DeError> {
        self.0.into_inner()
    }
}

/// Deserialize `T` from a node, keeping errors that [`Each`] set aside in `sink`.
pub fn from_node<'de, T: Deserialize<'de>>(
    node: &'de Node,
    src: &'de str,
    sink: &'de Sink,
) -> Result<T, DeError> {
    T::deserialize(NodeDe { node, src, sink })
}

#[derive(Clone, Copy)]
struct NodeDe<'de> {
    node: &'de Node,
    src: &'de str,
    sink: &'de Sink,
}

impl<'de> NodeDe<'de> {
    fn at(self, node: &'de Node) -> Self {
        Self { node, ..self }
    }

    /// The span an error about this node should point at: scalars whole,
    /// collections by their first line.
    fn error_span(self) -> SourceSpan {
        let span = self.node.span;
        match self.node.value {
            Value::Seq(_) | Value::Map(_) => {
                let start = span.offset();
                let line = self.src[start..]
                    .find('\n')
                    .unwrap_or(self.src.len() - start);
                (start, line.min(span.len())).into()
            }
            _ => span,
        }
    }

    fn spanned<T>(self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.or_span(self.error_span()))
    }

    /// The text of a scalar as written, so `port: 8300` reads as "8300" where a string is wanted.
    fn text(self) -> Option<&'de str> {
        match &self.node.value {
            Value::Str(s) => Some(&s.text),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => {
                let span = self.node.span;
                self.src.get(span.offset()..span.offset() + span.len())
            }
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

impl<'de> Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(&s.text),
            Value::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                de: self,
            }),
            Value::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                de: self,
            }),
        };
        self.spanned(r)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text() {
            Some(text) => self.spanned(visitor.visit_borrowed_str(text)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match name {
            SPANNED => visitor.visit_seq(SpanParts { de: self, step: 0 }),
            EACH => visitor.visit_seq(Caught { de: Some(self) }),
            _ => self.spanned(visitor.visit_newtype_struct(self)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.text() {
            Some(text) => self.spanned(visitor.visit_enum(text.into_deserializer())),
            None => self.deserialize_any(visitor),
        }
    }

    /// Only a mapping: serde's derived structs would also read a list, field
    /// by field, and then complain about the wrong thing.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let found = match &self.node.value {
            Value::Map(_) => return self.deserialize_any(visitor),
            Value::Seq(_) => de::Unexpected::Seq,
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Int(i) => de::Unexpected::Signed(*i),
            Value::Float(f) => de::Unexpected::Float(*f),
            Value::Str(s) => de::Unexpected::Str(&s.text),
        };
        self.spanned(Err(de::Error::invalid_type(found, &visitor)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct seq tuple tuple_struct map ignored_any
    }
}

struct Seq<'de> {
    items: std::slice::Iter<'de, Node>,
    de: NodeDe<'de>,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some(node) => {
                let de = self.de.at(node);
                de.spanned(seed.deserialize(de)).map(Some)
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'de> {
    entries: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de Node>,
    de: NodeDe<'de>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((key, value)) => {
                self.value = Some(value);
                let de = self.de.at(key);
                de.spanned(seed.deserialize(de)).map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self
            .value
            .take()
            .expect("serde asks for a value only after its key");
        let de = self.de.at(node);
        de.spanned(seed.deserialize(de))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Hands [`Each`] its value, or no value after setting the error aside.
struct Caught<'de> {
    de: Option<NodeDe<'de>>,
}

impl<'de> SeqAccess<'de> for Caught<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(de) = self.de.take() else {
            return Ok(None);
        };
        match seed.deserialize(de) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                de.sink.0.borrow_mut().push(e.or_span(de.error_span()));
                Ok(None)
            }
        }
    }
}

/// Hands [`Spanned`] its offset, length, verbatim text offset and value, in that order.
struct SpanParts<'de> {
    de: NodeDe<'de>,
    step: u8,
}

impl<'de> SeqAccess<'de> for SpanParts<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let span = self.de.node.span;
        let verbatim = match &self.de.node.value {
            Value::Str(s) => s.verbatim_at,
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(span.offset()),
            _ => None,
        };
        self.step += 1;
        let number = |n: usize| seed_u64(n);
        match self.step {
            1 => seed.deserialize(number(span.offset())).map(Some),
            2 => seed.deserialize(number(span.len())).map(Some),
            3 => seed
                .deserialize(number(verbatim.map_or(usize::MAX, |v| v)))
                .map(Some),
            4 => seed.deserialize(self.de).map(Some),
            _ => Ok(None),
        }
    }
}

fn seed_u64(n: usize) -> de::value::U64Deserializer<DeError> {
    (n as u64).into_deserializer()
}

/// A value with the span of the YAML it came from.
#[derive(Debug, Clone)]
pub struct Spanned<T> {
    pub value: T,
    pub span: SourceSpan,
    /// Byte offset where the value's text stands verbatim in the file, if it does.
    pub text_at: Option<usize>,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: SourceSpan) -> Self {
        Self {
            value,
            span,
            text_at: None,
        }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Spanned<T> {}
impl<T: std::hash::Hash> std::hash::Hash for Spanned<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Spanned<T>, A::Error> {
                let missing = || de::Error::custom("a spanned value needs orch's YAML reader");
                let offset: u64 = seq.next_element()?.ok_or_else(missing)?;
                let len: u64 = seq.next_element()?.ok_or_else(missing)?;
                let text_at: u64 = seq.next_element()?.ok_or_else(missing)?;
                let value: T = seq.next_element()?.ok_or_else(missing)?;
                let usize_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
                Ok(Spanned {
                    value,
                    span: (usize_of(offset), usize_of(len)).into(),
                    text_at: (text_at != u64::MAX).then(|| usize_of(text_at)),
                })
            }
        }
        deserializer.deserialize_newtype_struct(SPANNED, V(PhantomData))
    }
}

/// A value read on its own: an error inside it is recorded and reading goes
/// on with the next one. `None` means it had errors.
#[derive(Debug, Clone)]
pub struct Each<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Each<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Each<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Each<T>, A::Error> {
                seq.next_element().map(Each)
            }
        }
        deserializer.deserialize_newtype_struct(EACH, V(PhantomData))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Each<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}
