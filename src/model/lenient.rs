//! Forgiving decoding for fields a user can mangle: see the module docs of `model`.
//! Pure: no I/O, no clock.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A user-written scalar: absent, well-formed, or kept raw so validation can quote it.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Lenient<T> {
    #[default]
    Missing,
    Valid(T),
    Invalid(Value),
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
        if let Value::String(s) = &value {
            if let Ok(v) = serde_json::from_str::<T>(s.trim()) {
                return Lenient::Valid(v);
            }
        }
        if let Some(f) = value.as_f64() {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                if let Ok(v) = T::deserialize(&Value::from(f as i64)) {
                    return Lenient::Valid(v);
                }
            }
        }
        Lenient::Invalid(value)
    }
}

impl<T> Lenient<T> {
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
        match self {
            Lenient::Valid(v) => Ok(v),
            Lenient::Missing => Err(format!("{field} is missing")),
            Lenient::Invalid(raw) => Err(format!("{field}: {raw} is not {kind}")),
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

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lenient::from_value(Value::deserialize(d)?))
    }
}

impl<T: Serialize> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Lenient::Missing => s.serialize_none(),
            Lenient::Valid(v) => v.serialize(s),
            Lenient::Invalid(raw) => raw.serialize(s),
        }
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
