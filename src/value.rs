//! Values as the core sees them, independent of the Native API's tagged union.
//!
//! `abi/` converts every tVariant tag the platform may send into a [`Value`] and back; the
//! core never sees tags, pointers or UTF-16. Integers and doubles stay distinct so that a
//! number round-trips with the tag it came with (I4 stays I4, R8 stays R8).

use std::fmt;

use crate::error::{Error, Names, Result};
use crate::lang::Lang;

/// A value passed between 1C code and the add-in.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `Неопределено` / `Undefined` (VTYPE_EMPTY).
    Empty,
    /// `Null` (VTYPE_NULL).
    Null,
    /// `Булево` / `Boolean`.
    Bool(bool),
    /// A `Число` that arrived as (or is best returned as) an integer tag.
    Int(i64),
    /// A `Число` that arrived as (or is best returned as) a floating-point tag.
    Double(f64),
    /// `Дата` / `Date`, to the second, without a time zone (as in 1C).
    Date(Date),
    /// `Строка` / `String`.
    Str(String),
    /// `ДвоичныеДанные` / `BinaryData`.
    Binary(Vec<u8>),
    /// A tag 1C never sends for a 1C value (an interface, a CLSID, an error code, a nested
    /// variant, a vector, array or by-reference flag): never read as a value, refused by
    /// every typed parameter with the wrong-type error.
    Unsupported(u16),
}

impl Value {
    /// The 1C type of this value, for error texts.
    pub fn type_name(&self) -> TypeName {
        match self {
            Value::Empty => TypeName::Undefined,
            Value::Null => TypeName::Null,
            Value::Bool(_) => TypeName::Boolean,
            Value::Int(_) | Value::Double(_) => TypeName::Number,
            Value::Date(_) => TypeName::Date,
            Value::Str(_) => TypeName::String,
            Value::Binary(_) => TypeName::Binary,
            Value::Unsupported(_) => TypeName::Unsupported,
        }
    }

    /// The number as f64, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Double(d) => Some(d),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The whole number in `min..=max` this value holds, or an error naming `what`.
    ///
    /// One rule for every integer argument and property (timeouts, ports, ids, codes,
    /// sizes): a fraction is refused, never rounded. Rounding made `Получить(0.4, …)` a
    /// timeout of 0, which means "wait without a bound": a hang from a typo.
    pub fn whole(&self, what: Names, min: u64, max: u64) -> Result<u64> {
        let f = self.as_f64().unwrap_or(f64::NAN);
        if !f.is_finite() || f.fract() != 0.0 || f < min as f64 || f > max as f64 {
            return Err(Error::NotWhole {
                what,
                min,
                max,
                got: f,
            });
        }
        Ok(f as u64)
    }

    /// A number value from an integer count (counters, ports, ids).
    pub fn from_count(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

/// The 1C types, named in error texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeName {
    /// `Неопределено`.
    Undefined,
    /// `Null`.
    Null,
    /// `Булево`.
    Boolean,
    /// `Число`.
    Number,
    /// `Дата`.
    Date,
    /// `Строка`.
    String,
    /// `ДвоичныеДанные`.
    Binary,
    /// A value the add-in cannot take (see [`Value::Unsupported`]).
    Unsupported,
    /// Any value of the 1C primitive types (what an `Any` parameter accepts).
    Primitive,
}

impl TypeName {
    /// The type's name as 1C code writes it in the given language.
    pub fn name(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (TypeName::Undefined, Lang::Ru) => "Неопределено",
            (TypeName::Undefined, Lang::En) => "Undefined",
            (TypeName::Null, _) => "Null",
            (TypeName::Boolean, Lang::Ru) => "Булево",
            (TypeName::Boolean, Lang::En) => "Boolean",
            (TypeName::Number, Lang::Ru) => "Число",
            (TypeName::Number, Lang::En) => "Number",
            (TypeName::Date, Lang::Ru) => "Дата",
            (TypeName::Date, Lang::En) => "Date",
            (TypeName::String, Lang::Ru) => "Строка",
            (TypeName::String, Lang::En) => "String",
            (TypeName::Binary, Lang::Ru) => "ДвоичныеДанные",
            (TypeName::Binary, Lang::En) => "BinaryData",
            (TypeName::Unsupported, Lang::Ru) => "значение неподдерживаемого типа",
            (TypeName::Unsupported, Lang::En) => "a value of an unsupported type",
            (TypeName::Primitive, Lang::Ru) => {
                "значение примитивного типа (Строка, Число, Булево, Дата, ДвоичныеДанные)"
            }
            (TypeName::Primitive, Lang::En) => {
                "a value of a primitive type (String, Number, Boolean, Date, BinaryData)"
            }
        }
    }
}

/// What a parameter or a writable property accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// Any value; the member interprets it.
    Any,
    /// A by-reference parameter the member writes; its incoming value is ignored.
    Out,
    /// A string.
    Str,
    /// A number (any integer or floating tag).
    Number,
    /// A Boolean.
    Bool,
    /// Binary data.
    Binary,
}

impl ParamType {
    /// Whether `v` is acceptable.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            ParamType::Any => !matches!(v, Value::Unsupported(_)),
            ParamType::Out => true,
            ParamType::Str => matches!(v, Value::Str(_)),
            ParamType::Number => matches!(v, Value::Int(_) | Value::Double(_)),
            ParamType::Bool => matches!(v, Value::Bool(_)),
            ParamType::Binary => matches!(v, Value::Binary(_)),
        }
    }

    /// The expected type for error texts (`None` for Out, which accepts everything).
    pub fn expected(self) -> Option<TypeName> {
        match self {
            ParamType::Out => None,
            ParamType::Any => Some(TypeName::Primitive),
            ParamType::Str => Some(TypeName::String),
            ParamType::Number => Some(TypeName::Number),
            ParamType::Bool => Some(TypeName::Boolean),
            ParamType::Binary => Some(TypeName::Binary),
        }
    }
}

/// A 1C date: proleptic Gregorian calendar, to the second, no time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Full year, e.g. 2026 (1C dates span years 1..9999).
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59 (a leap second 60 from `struct tm` is clamped to 59).
    pub second: u8,
}

/// Days from 0000-03-01 based civil calendar (Howard Hinnant's algorithm), shifted so that
/// 1970-01-01 is day 0.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day number of 1899-12-30, the OLE automation epoch, relative to 1970-01-01.
const OLE_EPOCH_DAYS: i64 = -25_569;

impl Date {
    /// Builds a date from fields as `struct tm` carries them, normalising out-of-range
    /// seconds, minutes, hours, days and months the way `timegm` would.
    pub fn from_fields(
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
    ) -> Date {
        let m0 = month - 1;
        let y = year + m0.div_euclid(12);
        let m = m0.rem_euclid(12) + 1;
        let days = days_from_civil(y, m, 1) + day - 1;
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59);
        Date::from_unix(secs)
    }

    /// Seconds since 1970-01-01 00:00:00.
    pub fn to_unix(self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        ) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The date `secs` seconds after 1970-01-01 00:00:00.
    pub fn from_unix(secs: i64) -> Date {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        Date {
            year: i32::try_from(y).unwrap_or(if y < 0 { i32::MIN } else { i32::MAX }),
            month: m as u8,
            day: d as u8,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// From an OLE automation date (VTYPE_DATE): days since 1899-12-30, the fraction being
    /// the time of day. Rounded to the nearest second; NaN and infinities give the epoch.
    pub fn from_ole(days: f64) -> Date {
        if !days.is_finite() {
            return Date::from_unix(OLE_EPOCH_DAYS * 86_400);
        }
        // 1C dates stay within years 1..9999; clamp far outside that to keep i64 math sane.
        let days = days.clamp(-1.0e7, 1.0e7);
        let whole = days.trunc();
        // OLE dates before the epoch encode the time of day as a positive fraction.
        let frac = (days - whole).abs();
        let secs_of_day = (frac * 86_400.0).round() as i64;
        Date::from_unix((OLE_EPOCH_DAYS + whole as i64) * 86_400 + secs_of_day)
    }

    /// As an OLE automation date.
    pub fn to_ole(self) -> f64 {
        let secs = self.to_unix() - OLE_EPOCH_DAYS * 86_400;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as f64 / 86_400.0;
        // Before the epoch the fraction still counts forward from midnight: -1.25 is
        // 1899-12-29 06:00.
        if days >= 0 {
            days as f64 + rem
        } else {
            days as f64 - rem
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_round_trip() {
        for secs in [
            0i64,
            1,
            86_399,
            86_400,
            -1,
            1_700_000_000,
            -62_135_596_800,
            253_402_300_799,
        ] {
            assert_eq!(Date::from_unix(secs).to_unix(), secs, "{secs}");
        }
        assert_eq!(
            Date::from_unix(0),
            Date {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
    }

    #[test]
    fn ole_dates() {
        let epoch = Date::from_ole(0.0);
        assert_eq!(epoch.to_string(), "1899-12-30T00:00:00");
        assert_eq!(Date::from_ole(2.25).to_string(), "1900-01-01T06:00:00");
        // 2026-11-22 12:00:00 is day 46348.5.
        let d = Date::from_fields(2026, 11, 22, 12, 0, 0);
        assert_eq!(d.to_ole(), 46_348.5);
        assert_eq!(Date::from_ole(46_348.5), d);
        assert_eq!(Date::from_ole(f64::NAN), epoch);
        let before = Date::from_ole(-1.25);
        assert_eq!(before.to_string(), "1899-12-29T06:00:00");
        assert_eq!(before.to_ole(), -1.25);
    }

    #[test]
    fn fields_normalise_like_timegm() {
        assert_eq!(
            Date::from_fields(2024, 13, 1, 0, 0, 0).to_string(),
            "2025-01-01T00:00:00"
        );
        assert_eq!(
            Date::from_fields(2024, 2, 30, 0, 0, 0).to_string(),
            "2024-03-01T00:00:00"
        );
        assert_eq!(
            Date::from_fields(2024, 1, 1, 0, 0, 60).to_string(),
            "2024-01-01T00:00:59"
        );
        assert_eq!(
            Date::from_fields(1, 1, 1, 0, 0, 0).to_string(),
            "0001-01-01T00:00:00"
        );
    }

    #[test]
    fn param_types() {
        assert!(ParamType::Number.accepts(&Value::Int(1)));
        assert!(ParamType::Number.accepts(&Value::Double(1.5)));
        assert!(!ParamType::Number.accepts(&Value::Str("1".into())));
        assert!(ParamType::Out.accepts(&Value::Null));
        assert!(!ParamType::Binary.accepts(&Value::Str(String::new())));
        assert_eq!(Value::Double(2.0).type_name().name(Lang::Ru), "Число");
    }
}
