//! `tVariant` ⇄ [`Value`]: every tag the platform may send, read; results written with
//! platform memory and exact lengths (ABI.md §2, §6.1–§6.2).

use std::ffi::c_int;

use ws1c::{Date, Value};

use crate::memory::MemoryManager;
use crate::types::{Buf, Payload, TVariant, Tm, vt};
use crate::wstr;

/// The platform refused memory for a result.
#[derive(Debug, PartialEq, Eq)]
pub struct NoMemory;

/// Reads a variant the platform passed.
///
/// # Safety
/// `v` points to a readable tVariant whose payload matches its tag (buffers readable for
/// their stated length).
pub unsafe fn read(v: *const TVariant) -> Value {
    // SAFETY: readable per the contract.
    let v = unsafe { &*v };
    let u = &v.u;
    if v.vt & !vt::TYPEMASK != 0 {
        // VECTOR / ARRAY / BYREF: the payload is a pointer to something else, never a value.
        return Value::Unsupported(v.vt);
    }
    // SAFETY: each arm reads the union member its tag names, which the platform wrote.
    unsafe {
        match v.vt {
            vt::EMPTY => Value::Empty,
            vt::NULL => Value::Null,
            vt::BOOL => Value::Bool(u.b != 0),
            vt::I1 => Value::Int(i64::from(u.i8)),
            vt::I2 => Value::Int(i64::from(u.i16)),
            vt::I4 => Value::Int(i64::from(u.i32)),
            vt::INT => Value::Int(i64::from(u.int)),
            vt::I8 => Value::Int(u.i64),
            vt::UI1 => Value::Int(i64::from(u.u8)),
            vt::UI2 => Value::Int(i64::from(u.u16)),
            vt::UI4 | vt::UINT => Value::Int(i64::from(u.u32)),
            vt::UI8 => i64::try_from(u.u64).map_or(Value::Double(u.u64 as f64), Value::Int),
            vt::R4 => Value::Double(f64::from(u.f32)),
            vt::R8 => Value::Double(u.f64),
            vt::DATE => Value::Date(Date::from_ole(u.f64)),
            vt::TM => Value::Date(from_tm(&u.tm)),
            vt::PWSTR => Value::Str(wstr::read_len(u.wstr.ptr, u.wstr.len as usize)),
            vt::PSTR => Value::Str(String::from_utf8_lossy(bytes(u.bytes)).into_owned()),
            vt::BLOB => Value::Binary(bytes(u.bytes).to_vec()),
            // Tags 1C never sends for its values: interfaces, nested variants, CLSIDs, error
            // codes and HRESULTs (not numbers to 1C code), and unknown ones.
            _ => Value::Unsupported(v.vt),
        }
    }
}

/// # Safety
/// `b.ptr` is null or points to `b.len` readable bytes.
unsafe fn bytes<'a>(b: Buf<u8>) -> &'a [u8] {
    if b.ptr.is_null() || b.len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(b.ptr, b.len as usize) }
    }
}

fn from_tm(tm: &Tm) -> Date {
    Date::from_fields(
        i64::from(tm.tm_year) + 1900,
        i64::from(tm.tm_mon) + 1,
        i64::from(tm.tm_mday),
        i64::from(tm.tm_hour),
        i64::from(tm.tm_min),
        i64::from(tm.tm_sec),
    )
}

fn to_tm(d: Date) -> Tm {
    let days = d.to_unix().div_euclid(86_400);
    let jan1 = Date {
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        ..d
    };
    Tm {
        tm_sec: c_int::from(d.second),
        tm_min: c_int::from(d.minute),
        tm_hour: c_int::from(d.hour),
        tm_mday: c_int::from(d.day),
        tm_mon: c_int::from(d.month) - 1,
        tm_year: d.year - 1900,
        // 1970-01-01 was a Thursday (4).
        tm_wday: (days + 4).rem_euclid(7) as c_int,
        tm_yday: (days - jan1.to_unix().div_euclid(86_400)) as c_int,
        tm_isdst: 0,
        #[cfg(unix)]
        tm_gmtoff: 0,
        #[cfg(unix)]
        tm_zone: std::ptr::null(),
    }
}

/// Whether the variant's tag says it owns a platform buffer.
fn holds_buffer(v: &TVariant) -> bool {
    // SAFETY: the pointer member is read only after the tag says it is one of the buffer
    // types, all of which start with the pointer.
    matches!(v.vt, vt::PWSTR | vt::PSTR | vt::BLOB) && !unsafe { v.u.bytes.ptr.is_null() }
}

/// Writes a by-reference argument (ABI.md §6.2): frees the buffer the slot holds, if its
/// tag says it holds one, then writes `value`. On `NoMemory` the slot is left `EMPTY`.
///
/// # Safety
/// `v` points to a writable tVariant owned by the platform, its payload matching its tag.
pub unsafe fn write_out(
    mem: &MemoryManager,
    v: *mut TVariant,
    value: &Value,
) -> Result<(), NoMemory> {
    // SAFETY: writable per the contract.
    let slot = unsafe { &mut *v };
    if holds_buffer(slot) {
        // SAFETY: holds_buffer checked the tag; the buffer is the platform's to free.
        mem.free(unsafe { slot.u.bytes.ptr }.cast());
    }
    *slot = TVariant::zeroed();
    // SAFETY: the slot is now empty and writable.
    unsafe { write_fresh(mem, v, value) }
}

/// Writes a result into a variant the platform zeroed (`GetPropVal`, `CallAsFunc`,
/// `GetParamDefValue`): nothing is freed, whatever the slot held.
///
/// # Safety
/// `v` points to a writable tVariant.
pub unsafe fn write_fresh(
    mem: &MemoryManager,
    v: *mut TVariant,
    value: &Value,
) -> Result<(), NoMemory> {
    let (u, tag) = match value {
        Value::Empty | Value::Unsupported(_) => (Payload { iid: [0; 16] }, vt::EMPTY),
        Value::Null => (Payload { iid: [0; 16] }, vt::NULL),
        Value::Bool(b) => (Payload { b: u8::from(*b) }, vt::BOOL),
        Value::Int(i) => match i32::try_from(*i) {
            Ok(i) => (Payload { i32: i }, vt::I4),
            // Beyond 32 bits: R8 is exact to 2^53 and every platform reads it.
            Err(_) => (Payload { f64: *i as f64 }, vt::R8),
        },
        Value::Double(d) => (Payload { f64: *d }, vt::R8),
        Value::Date(d) => (Payload { tm: to_tm(*d) }, vt::TM),
        Value::Str(s) => {
            let (p, len) = mem.alloc_wstr(s).ok_or(NoMemory)?;
            (
                Payload {
                    wstr: Buf {
                        ptr: p.as_ptr(),
                        len,
                    },
                },
                vt::PWSTR,
            )
        }
        Value::Binary(b) => {
            let (p, len) = mem.alloc_bytes(b).ok_or(NoMemory)?;
            (
                Payload {
                    bytes: Buf {
                        ptr: p.as_ptr(),
                        len,
                    },
                },
                vt::BLOB,
            )
        }
    };
    // SAFETY: writable per the contract; the tag is written with its payload.
    unsafe {
        *v = TVariant {
            u,
            cb_elements: 0,
            vt: tag,
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(u: Payload, tag: u16) -> TVariant {
        TVariant {
            u,
            cb_elements: 0,
            vt: tag,
        }
    }

    fn rd(v: &TVariant) -> Value {
        // SAFETY: test variants are built with payloads matching their tags.
        unsafe { read(v) }
    }

    #[test]
    fn numbers_of_every_tag() {
        assert_eq!(rd(&var(Payload { i16: -3 }, vt::I2)), Value::Int(-3));
        assert_eq!(rd(&var(Payload { i32: 7 }, vt::I4)), Value::Int(7));
        assert_eq!(
            rd(&var(Payload { i64: 1 << 40 }, vt::I8)),
            Value::Int(1 << 40)
        );
        assert_eq!(
            rd(&var(Payload { u64: u64::MAX }, vt::UI8)),
            Value::Double(u64::MAX as f64)
        );
        assert_eq!(rd(&var(Payload { u8: 200 }, vt::UI1)), Value::Int(200));
        assert_eq!(
            rd(&var(Payload { u32: u32::MAX }, vt::UI4)),
            Value::Int(i64::from(u32::MAX))
        );
        assert_eq!(rd(&var(Payload { i8: -1 }, vt::I1)), Value::Int(-1));
        assert_eq!(rd(&var(Payload { f32: 1.5 }, vt::R4)), Value::Double(1.5));
        assert_eq!(rd(&var(Payload { f64: 2.25 }, vt::R8)), Value::Double(2.25));
        assert_eq!(rd(&var(Payload { b: 2 }, vt::BOOL)), Value::Bool(true));
        assert_eq!(rd(&var(Payload { iid: [0; 16] }, vt::NULL)), Value::Null);
        assert_eq!(rd(&var(Payload { iid: [0; 16] }, vt::EMPTY)), Value::Empty);
        // An interface and a by-reference I4 are no values: refused, never guessed.
        assert_eq!(rd(&var(Payload { iid: [9; 16] }, 9)), Value::Unsupported(9));
        assert_eq!(
            rd(&var(Payload { i32: 7 }, 0x4000 | vt::I4)),
            Value::Unsupported(0x4003)
        );
    }

    #[test]
    fn strings_use_the_length_not_a_terminator() {
        let mut units: Vec<u16> = "абвгд".encode_utf16().collect();
        let v = var(
            Payload {
                wstr: Buf {
                    ptr: units.as_mut_ptr(),
                    len: 3,
                },
            },
            vt::PWSTR,
        );
        assert_eq!(rd(&v), Value::Str("абв".into()));
        let empty = var(
            Payload {
                wstr: Buf {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                },
            },
            vt::PWSTR,
        );
        assert_eq!(rd(&empty), Value::Str(String::new()));
        let mut b = *b"hello";
        let p = var(
            Payload {
                bytes: Buf {
                    ptr: b.as_mut_ptr(),
                    len: 5,
                },
            },
            vt::PSTR,
        );
        assert_eq!(rd(&p), Value::Str("hello".into()));
        let blob = var(
            Payload {
                bytes: Buf {
                    ptr: b.as_mut_ptr(),
                    len: 2,
                },
            },
            vt::BLOB,
        );
        assert_eq!(rd(&blob), Value::Binary(b"he".to_vec()));
    }

    #[test]
    fn dates_both_ways() {
        let d = Date::from_fields(2026, 11, 22, 13, 14, 15);
        let tm = to_tm(d);
        assert_eq!((tm.tm_year, tm.tm_mon, tm.tm_mday), (126, 10, 22));
        assert_eq!(tm.tm_wday, 0, "2026-11-22 is a Sunday");
        assert_eq!(tm.tm_yday, 325);
        assert_eq!(from_tm(&tm), d);
        assert_eq!(rd(&var(Payload { tm }, vt::TM)), Value::Date(d));
        assert_eq!(
            rd(&var(Payload { f64: d.to_ole() }, vt::DATE)),
            Value::Date(d)
        );
    }
}
