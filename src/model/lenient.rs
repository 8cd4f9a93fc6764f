//! Forgiving decoding for fields a user can mangle: see the module docs of `model`.
//! Pure: no I/O, no clock.

use serde::Deserialize;
use serde::de::value::{
    BoolDeserializer, F64Deserializer, I64Deserializer, MapAccessDeserializer,
    SeqAccessDeserializer, StrDeserializer, U64Deserializer,
};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;

/// A user-written scalar: absent, well-formed, or kept raw so validation can quote it.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Lenient<T> {
    #[default]
    Missing,
    Valid(T),
    /// Boxed: almost every value is valid, and a `Value` inline would double the size of every
    /// field (a LoadBalancer holds thousands of them).
    Invalid(Box<Value>),
}

impl<T: DeserializeOwned> Lenient<T> {
    /// Accepts the value as `T`, or a string holding `T`'s JSON (`"8080"`, `"true"`), or an integral
    /// float for an integer (`8080.0`); anything else is kept raw.
    pub fn from_value(value: Value) -> Self {
        if value.is_null() {
            return Lenient::Missing;
        }
        if let Ok(v) = T::deserialize(&value) {
            return Lenient::Valid(v);
        }
        if let Value::String(s) = &value
            && let Ok(v) = serde_json::from_str::<T>(s.trim())
        {
            return Lenient::Valid(v);
        }
        if let Some(f) = value.as_f64()
            && f.fract() == 0.0
            && f.abs() < 1e15
            && let Ok(v) = T::deserialize(&Value::from(f as i64))
        {
            return Lenient::Valid(v);
        }
        Lenient::Invalid(Box::new(value))
    }
}

impl<T> Lenient<T> {
    #[cfg(test)]
    pub fn valid(v: T) -> Self {
        Lenient::Valid(v)
    }

    /// The value if it is well-formed.
    pub fn get(&self) -> Option<&T> {
        match self {
            Lenient::Valid(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_missing(&self) -> bool {
        matches!(self, Lenient::Missing)
    }

    /// The value, or a message naming the field: `spec.portRange.low is missing`,
    /// `spec.portRange.low: "abc" is not an integer`.
    pub fn require(&self, field: &str, kind: &str) -> Result<&T, String> {
        self.require_with(|| field.to_string(), kind)
    }

    /// Like `require`, with the field name built only for the error (hot paths over many items).
    pub fn require_with(&self, field: impl FnOnce() -> String, kind: &str) -> Result<&T, String> {
        match self {
            Lenient::Valid(v) => Ok(v),
            Lenient::Missing => Err(format!("{} is missing", field())),
            Lenient::Invalid(raw) => Err(format!("{}: {raw} is not {kind}", field())),
        }
    }

    /// Like `require`, but absence is fine.
    pub fn optional(&self, field: &str, kind: &str) -> Result<Option<&T>, String> {
        match self {
            Lenient::Missing => Ok(None),
            other => other.require(field, kind).map(Some),
        }
    }
}

/// Decodes scalars straight from the input (no `Value` in between: watch streams carry thousands of
/// these); only a wrong-typed value is kept as raw JSON, and objects or lists are buffered as `Value`.
impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<T>(PhantomData<T>);

/// `T` read from one scalar, falling back to [`Lenient::from_value`] (strings holding JSON, integral
/// floats, raw keeping) exactly as if the scalar had come as a `Value`.
fn scalar<'de, T, D>(d: D, raw: impl FnOnce() -> Value) -> Lenient<T>
where
    T: DeserializeOwned,
    D: Deserializer<'de, Error = serde::de::value::Error>,
{
    match T::deserialize(d) {
        Ok(v) => Lenient::Valid(v),
        Err(_) => Lenient::from_value(raw()),
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Missing)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(scalar(BoolDeserializer::new(v), || Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(scalar(I64Deserializer::new(v), || Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(scalar(U64Deserializer::new(v), || Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(scalar(F64Deserializer::new(v), || Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(scalar(StrDeserializer::new(v), || {
            Value::String(v.to_string())
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Lenient::from_value)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Lenient::from_value)
    }
}

/// For objects and lists of built-in kinds: `null` decodes as the default, other errors still fail.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// For objects and lists in our custom resources: any shape that does not fit decodes as the
/// default, so one mangled field cannot make the object (or its list) undecodable.
pub fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(d)?;
    Ok(T::deserialize(&value).unwrap_or_default())
}

/// For objects in our custom resources whose every field is itself forgiving (`Lenient`,
/// `lenient_object`, `lenient_list`), so decoding one from a JSON object cannot fail: decoded
/// straight from the input; any other shape (a string, a list, ...) decodes as the default.
/// Use `or_default` instead where a field has a plain type.
pub fn lenient_object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    ObjectSeed(PhantomData)
        .deserialize(d)
        .map(Option::unwrap_or_default)
}

/// Visitor methods for `null` and every scalar (no object, no list), each giving `$v`. The visitors
/// here read JSON (text or `Value`), whose `deserialize_any` gives `null` as a unit, never an option.
macro_rules! scalars_give {
    ($v:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($v)
        }
    };
}

/// One object: `Some`, or `None` for any other shape (read and dropped whole).
struct ObjectSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ObjectSeed<T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectSeed<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<T>, A::Error> {
        IgnoredAny::deserialize(SeqAccessDeserializer::new(seq)).map(|_| None)
    }

    scalars_give!(None);
}

/// For lists of forgiving objects (see `lenient_object`) in our custom resources: decoded straight
/// from the input; a list holding anything but objects, or a value that is not a list, decodes as
/// empty (as `or_default` would).
pub fn lenient_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    d.deserialize_any(ListVisitor(PhantomData))
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        let mut mangled = false;
        while let Some(item) = seq.next_element_seed(ObjectSeed(PhantomData))? {
            match item {
                Some(v) if !mangled => out.push(v),
                _ => mangled = true,
            }
        }
        Ok(if mangled { Vec::new() } else { out })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
        IgnoredAny::deserialize(MapAccessDeserializer::new(map)).map(|_| Vec::new())
    }

    scalars_give!(Vec::new());
}
