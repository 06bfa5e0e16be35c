//! Host-side values and their conversion to and from `tVariant`.

use std::ffi::c_void;

use crate::ffi::*;
use crate::mem::MemState;

/// A 1C value as the host sends it to / reads it from the add-in.
#[derive(Clone, Debug, PartialEq)]
pub enum Var {
    /// `VTYPE_EMPTY` (Undefined).
    Empty,
    /// `VTYPE_NULL`.
    Null,
    /// `VTYPE_BOOL`.
    Bool(bool),
    /// `VTYPE_I2` (also what a returned `VTYPE_I1` decodes to).
    I2(i16),
    /// `VTYPE_I4` (also what a returned `VTYPE_UI2` / `VTYPE_INT` decodes to).
    I4(i32),
    /// `VTYPE_I8` (also a returned `VTYPE_UI8` that fits in `i64`).
    I8(i64),
    /// `VTYPE_UI1`.
    UI1(u8),
    /// `VTYPE_UI4` (also a returned `VTYPE_UINT`).
    UI4(u32),
    /// `VTYPE_R4`.
    R4(f32),
    /// `VTYPE_R8`.
    R8(f64),
    /// `VTYPE_DATE`: OLE automation date (days since 1899-12-30).
    Date(f64),
    /// `VTYPE_TM`.
    Tm(HostTm),
    /// `VTYPE_PWSTR`.
    Str(String),
    /// `VTYPE_PSTR` (bytes, no terminator counted).
    PStr(Vec<u8>),
    /// `VTYPE_BLOB` (BinaryData).
    Blob(Vec<u8>),
    /// Any other tag (sent with a zero payload; received when the host cannot represent it, or
    /// when the value's buffer was invalid — see `Conn::violations`).
    Other(u16),
}

impl Var {
    /// The numeric value of any number variant (integers, R4, R8); `None` otherwise.
    pub fn as_f64(&self) -> Option<f64> {
        Some(match *self {
            Var::I2(v) => v.into(),
            Var::I4(v) => v.into(),
            Var::I8(v) => v as f64,
            Var::UI1(v) => v.into(),
            Var::UI4(v) => v.into(),
            Var::R4(v) => v.into(),
            Var::R8(v) => v,
            _ => return None,
        })
    }

    /// The value of an integer variant, or of R4/R8 holding an integral value in range.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Var::I2(v) => Some(v.into()),
            Var::I4(v) => Some(v.into()),
            Var::I8(v) => Some(v),
            Var::UI1(v) => Some(v.into()),
            Var::UI4(v) => Some(v.into()),
            Var::R4(_) | Var::R8(_) => {
                let f = self.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 9.0e18).then_some(f as i64)
            }
            _ => None,
        }
    }

    /// The text of a `Str`, or of a `PStr` that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Var::Str(s) => Some(s),
            Var::PStr(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value of a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Var::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The bytes of a `Blob`.
    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Var::Blob(b) => Some(b),
            _ => None,
        }
    }

    /// The date of a `Tm`, or of a `Date` converted from the OLE representation.
    pub fn as_tm(&self) -> Option<HostTm> {
        match *self {
            Var::Tm(t) => Some(t),
            Var::Date(d) => HostTm::from_ole(d),
            _ => None,
        }
    }

    /// True for `Empty` (1C `Undefined`).
    pub fn is_empty(&self) -> bool {
        matches!(self, Var::Empty)
    }

    /// The `VTYPE_*` tag this value is sent with.
    pub fn vt(&self) -> u16 {
        match self {
            Var::Empty => VTYPE_EMPTY,
            Var::Null => VTYPE_NULL,
            Var::Bool(_) => VTYPE_BOOL,
            Var::I2(_) => VTYPE_I2,
            Var::I4(_) => VTYPE_I4,
            Var::I8(_) => VTYPE_I8,
            Var::UI1(_) => VTYPE_UI1,
            Var::UI4(_) => VTYPE_UI4,
            Var::R4(_) => VTYPE_R4,
            Var::R8(_) => VTYPE_R8,
            Var::Date(_) => VTYPE_DATE,
            Var::Tm(_) => VTYPE_TM,
            Var::Str(_) => VTYPE_PWSTR,
            Var::PStr(_) => VTYPE_PSTR,
            Var::Blob(_) => VTYPE_BLOB,
            Var::Other(vt) => *vt,
        }
    }
}

impl From<&str> for Var {
    fn from(s: &str) -> Var {
        Var::Str(s.to_owned())
    }
}
impl From<String> for Var {
    fn from(s: String) -> Var {
        Var::Str(s)
    }
}
impl From<bool> for Var {
    fn from(b: bool) -> Var {
        Var::Bool(b)
    }
}
impl From<i32> for Var {
    fn from(v: i32) -> Var {
        Var::I4(v)
    }
}
impl From<i64> for Var {
    fn from(v: i64) -> Var {
        Var::I8(v)
    }
}
impl From<f64> for Var {
    fn from(v: f64) -> Var {
        Var::R8(v)
    }
}
impl From<Vec<u8>> for Var {
    fn from(v: Vec<u8>) -> Var {
        Var::Blob(v)
    }
}
impl From<&[u8]> for Var {
    fn from(v: &[u8]) -> Var {
        Var::Blob(v.to_vec())
    }
}
impl From<HostTm> for Var {
    fn from(t: HostTm) -> Var {
        Var::Tm(t)
    }
}

/// A calendar date-time as carried by `VTYPE_TM` (converted to/from `struct tm`:
/// `tm_year = year - 1900`, `tm_mon = month - 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostTm {
    /// Full year, e.g. 2026.
    pub year: i32,
    /// Month 1..=12.
    pub month: u32,
    /// Day of month 1..=31.
    pub day: u32,
    /// Hour 0..=23.
    pub hour: u32,
    /// Minute 0..=59.
    pub min: u32,
    /// Second 0..=59 (60 for a leap second).
    pub sec: u32,
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days from 1970-01-01 back to the OLE epoch 1899-12-30.
const OLE_EPOCH_DAYS: i64 = -25_569;

impl HostTm {
    /// A date-time from its parts.
    pub const fn new(year: i32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> HostTm {
        HostTm {
            year,
            month,
            day,
            hour,
            min,
            sec,
        }
    }

    fn days(&self) -> i64 {
        days_from_civil(self.year.into(), self.month.into(), self.day.into())
    }

    /// The OLE automation date (`VTYPE_DATE` payload) for this date-time.
    pub fn to_ole(&self) -> f64 {
        let secs = f64::from(self.hour * 3600 + self.min * 60 + self.sec);
        let days = self.days() - OLE_EPOCH_DAYS;
        // OLE dates before the epoch keep a positive time fraction ("-1.25" = 1899-12-29 06:00).
        if days < 0 {
            days as f64 - secs / 86_400.0
        } else {
            days as f64 + secs / 86_400.0
        }
    }

    /// The date-time of an OLE automation date, rounded to the second; `None` if not finite or
    /// out of range.
    pub fn from_ole(ole: f64) -> Option<HostTm> {
        if !ole.is_finite() || ole.abs() > 3.0e6 {
            return None;
        }
        let mut days = ole.trunc() as i64;
        let mut secs = ((ole - ole.trunc()).abs() * 86_400.0).round() as i64;
        if secs >= 86_400 {
            secs -= 86_400;
            days += if ole < 0.0 { -1 } else { 1 };
        }
        let (y, m, d) = civil_from_days(days + OLE_EPOCH_DAYS);
        Some(HostTm {
            year: i32::try_from(y).ok()?,
            month: m,
            day: d,
            hour: (secs / 3600) as u32,
            min: (secs / 60 % 60) as u32,
            sec: (secs % 60) as u32,
        })
    }

    /// The C `struct tm` (weekday and year-day filled in, no DST, UTC offset 0).
    pub fn to_tm(&self) -> Tm {
        let days = self.days();
        Tm {
            tm_sec: self.sec as i32,
            tm_min: self.min as i32,
            tm_hour: self.hour as i32,
            tm_mday: self.day as i32,
            tm_mon: self.month as i32 - 1,
            tm_year: self.year - 1900,
            tm_wday: (days + 4).rem_euclid(7) as i32,
            tm_yday: (days - days_from_civil(self.year.into(), 1, 1)) as i32,
            tm_isdst: 0,
            #[cfg(unix)]
            tm_gmtoff: 0,
            #[cfg(unix)]
            tm_zone: std::ptr::null(),
        }
    }

    /// From a C `struct tm` (`None` if a field is out of its documented range).
    pub fn from_tm(tm: &Tm) -> Option<HostTm> {
        let ok = (0..=11).contains(&tm.tm_mon)
            && (1..=31).contains(&tm.tm_mday)
            && (0..=23).contains(&tm.tm_hour)
            && (0..=59).contains(&tm.tm_min)
            && (0..=60).contains(&tm.tm_sec);
        ok.then(|| HostTm {
            year: tm.tm_year.wrapping_add(1900),
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            min: tm.tm_min as u32,
            sec: tm.tm_sec as u32,
        })
    }
}

/// Encodes `v` into a fresh variant; string/blob buffers come from `mm` (as the platform's own
/// buffers do) and must be released with [`release`].
pub(crate) fn encode(mm: &MemState, v: &Var) -> TVariant {
    let mut t = TVariant::zeroed();
    t.vt = v.vt();
    match v {
        Var::Empty | Var::Null | Var::Other(_) => {}
        Var::Bool(b) => t.payload.b = u8::from(*b),
        Var::I2(x) => t.payload.i16 = *x,
        Var::I4(x) => t.payload.i32 = *x,
        Var::I8(x) => t.payload.i64 = *x,
        Var::UI1(x) => t.payload.u8 = *x,
        Var::UI4(x) => t.payload.u32 = *x,
        Var::R4(x) => t.payload.f32 = *x,
        Var::R8(x) | Var::Date(x) => t.payload.f64 = *x,
        Var::Tm(tm) => t.payload.tm = tm.to_tm(),
        Var::Str(s) => {
            let units: Vec<u16> = if s.is_ascii() {
                s.bytes().map(u16::from).collect()
            } else {
                s.encode_utf16().collect()
            };
            let len = u32::try_from(units.len()).expect("string too long for wstrLen");
            t.payload.wstr = WStr {
                ptr: mm.alloc_wstr(&units),
                len,
            };
        }
        Var::PStr(b) | Var::Blob(b) => {
            let len = u32::try_from(b.len()).expect("buffer too long for strLen");
            t.payload.bytes = Bytes {
                ptr: mm.alloc_bytes(b).cast(),
                len,
            };
        }
    }
    t
}

/// True if `vt` carries a buffer pointer that the platform owns and frees.
fn has_buffer(vt: u16) -> bool {
    matches!(vt, VTYPE_PWSTR | VTYPE_PSTR | VTYPE_BLOB)
}

/// Reads the buffer of a PWSTR/PSTR/BLOB variant, checking that it is a live block of `mm` and
/// that the length fits in it. Returns `None` (after reporting) if it must not be read.
fn buffer<'a>(
    mm: &MemState,
    ptr: *const c_void,
    bytes: usize,
    what: &str,
    violation: &mut dyn FnMut(String),
) -> Option<&'a [u8]> {
    if ptr.is_null() {
        if bytes != 0 {
            violation(format!("{what}: null pointer with length {bytes} bytes"));
        }
        return Some(&[]);
    }
    let Some(size) = mm.live_size(ptr) else {
        violation(format!(
            "{what}: buffer {ptr:p} is not a live AllocMemory block (foreign allocator, or \
             already freed); not read"
        ));
        return None;
    };
    let n = if bytes > size {
        violation(format!(
            "{what}: length {bytes} bytes exceeds the {size}-byte allocation; truncated"
        ));
        size
    } else {
        bytes
    };
    // SAFETY: `ptr` is the start of a live block of `size >= n` bytes handed out by this memory
    // manager (checked just above); the block is initialised as far as the add-in wrote it, and
    // the host reads at most the length the add-in declared. The slice is only used before the
    // block is released by the caller.
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), n) })
}

/// Decodes a variant written by the add-in (or by the host) without taking ownership; protocol
/// problems are reported through `violation`, never by panicking.
pub(crate) fn decode(mm: &MemState, t: &TVariant, violation: &mut dyn FnMut(String)) -> Var {
    let p = &t.payload;
    // SAFETY (for every union read below): the variant is fully initialised (the host zeroes
    // every variant before handing it out, and encode() writes whole members), and each member
    // read is plain data for which every bit pattern is valid (integers, floats, raw pointers,
    // `struct tm` of ints/long/pointer; `bVal` is read as a byte).
    match t.vt {
        VTYPE_EMPTY => Var::Empty,
        VTYPE_NULL => Var::Null,
        VTYPE_BOOL => {
            // SAFETY: see above.
            let b = unsafe { p.b };
            if b > 1 {
                violation(format!("VTYPE_BOOL with byte value {b}"));
            }
            Var::Bool(b != 0)
        }
        // SAFETY: see above.
        VTYPE_I1 => Var::I2(unsafe { p.i8 }.into()),
        // SAFETY: see above.
        VTYPE_I2 => Var::I2(unsafe { p.i16 }),
        // SAFETY: see above.
        VTYPE_I4 | VTYPE_INT => Var::I4(unsafe { p.i32 }),
        // SAFETY: see above.
        VTYPE_UI2 => Var::I4(unsafe { p.u16 }.into()),
        // SAFETY: see above.
        VTYPE_I8 => Var::I8(unsafe { p.i64 }),
        VTYPE_UI8 => {
            // SAFETY: see above.
            let v = unsafe { p.u64 };
            i64::try_from(v).map_or(Var::Other(VTYPE_UI8), Var::I8)
        }
        // SAFETY: see above.
        VTYPE_UI1 => Var::UI1(unsafe { p.u8 }),
        // SAFETY: see above.
        VTYPE_UI4 | VTYPE_UINT => Var::UI4(unsafe { p.u32 }),
        // SAFETY: see above.
        VTYPE_R4 => Var::R4(unsafe { p.f32 }),
        // SAFETY: see above.
        VTYPE_R8 => Var::R8(unsafe { p.f64 }),
        // SAFETY: see above.
        VTYPE_DATE => Var::Date(unsafe { p.f64 }),
        VTYPE_TM => {
            // SAFETY: see above.
            let tm = unsafe { p.tm };
            match HostTm::from_tm(&tm) {
                Some(h) => Var::Tm(h),
                None => {
                    violation(format!("VTYPE_TM with out-of-range fields: {tm:?}"));
                    Var::Other(VTYPE_TM)
                }
            }
        }
        VTYPE_PWSTR => {
            // SAFETY: see above.
            let WStr { ptr, len } = unsafe { p.wstr };
            let Some(bytes) = buffer(mm, ptr.cast(), len as usize * 2, "PWSTR", violation) else {
                return Var::Other(VTYPE_PWSTR);
            };
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_ne_bytes([c[0], c[1]]))
                .collect();
            if units.last() == Some(&0) {
                violation(format!(
                    "PWSTR wstrLen={len} counts a trailing NUL (1C would get a string ending in U+0000)"
                ));
            }
            if let Some(s) = ascii(&units) {
                // No decoding needed (keeps the emulated platform out of benchmarks).
                return Var::Str(s);
            }
            match String::from_utf16(&units) {
                Ok(s) => Var::Str(s),
                Err(_) => {
                    violation("PWSTR is not valid UTF-16 (unpaired surrogate)".into());
                    Var::Str(String::from_utf16_lossy(&units))
                }
            }
        }
        VTYPE_PSTR | VTYPE_BLOB => {
            // SAFETY: see above.
            let Bytes { ptr, len } = unsafe { p.bytes };
            let what = if t.vt == VTYPE_BLOB { "BLOB" } else { "PSTR" };
            match buffer(mm, ptr.cast(), len as usize, what, violation) {
                Some(b) if t.vt == VTYPE_BLOB => Var::Blob(b.to_vec()),
                Some(b) => Var::PStr(b.to_vec()),
                None => Var::Other(t.vt),
            }
        }
        other => Var::Other(other),
    }
}

/// Frees the buffer a PWSTR/PSTR/BLOB variant holds (through `mm`, as the platform does) and
/// resets the variant to EMPTY. Pointers that are not live blocks are counted by the manager as
/// unknown frees and left alone.
pub(crate) fn release(mm: &MemState, t: &mut TVariant) {
    if has_buffer(t.vt) {
        // SAFETY: for these tags the first member is a pointer; every bit pattern of a raw
        // pointer is valid and the variant is initialised (see `decode`).
        let ptr = unsafe { t.payload.wstr.ptr };
        if !ptr.is_null() {
            mm.free(ptr.cast());
        }
    }
    *t = TVariant::zeroed();
}

/// C++ `long` to i64 (identity on LP64, widening on Windows).
#[allow(clippy::useless_conversion)]
pub(crate) fn from_long(v: std::ffi::c_long) -> i64 {
    v.into()
}

/// Encodes a Rust string as NUL-terminated UTF-16.
pub(crate) fn wz(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Reads a NUL-terminated UTF-16 string of unknown extent.
///
/// # Safety
/// `p` must be non-null, 2-aligned and point to readable memory up to and including a 0 unit.
pub(crate) unsafe fn read_wz(p: *const u16) -> Vec<u16> {
    // SAFETY: forwarded contract.
    unsafe { wz_slice(p) }.to_vec()
}

/// The units of a NUL-terminated UTF-16 string, without the terminator.
///
/// # Safety
/// As [`read_wz`]; the string must not change while the slice is in use.
unsafe fn wz_slice<'a>(p: *const u16) -> &'a [u16] {
    let mut len = 0usize;
    // SAFETY: per the contract every unit up to the terminator is readable.
    while unsafe { p.add(len).read() } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units before the terminator were just read one by one.
    unsafe { std::slice::from_raw_parts(p, len) }
}

/// Reads a NUL-terminated UTF-16 string that may be null; null reads as `None`.
///
/// # Safety
/// As [`read_wz`] when `p` is non-null.
pub(crate) unsafe fn read_wz_opt(p: *const u16) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: forwarded contract; the slice is used only within this call.
    let units = unsafe { wz_slice(p) };
    Some(ascii(units).unwrap_or_else(|| String::from_utf16_lossy(units)))
}

/// `units` as a string if they are all ASCII (narrowed byte by byte, no decoding).
fn ascii(units: &[u16]) -> Option<String> {
    if !units.iter().all(|&u| u < 0x80) {
        return None;
    }
    String::from_utf8(units.iter().map(|&u| u as u8).collect()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemManager;

    fn round_trip(mm: &MemState, v: &Var) -> (Var, Vec<String>) {
        let mut t = encode(mm, v);
        let mut viol = Vec::new();
        let back = decode(mm, &t, &mut |s| viol.push(s));
        release(mm, &mut t);
        (back, viol)
    }

    #[test]
    fn round_trips_every_kind() {
        let m = MemManager::new();
        let mm = &m.state;
        let values = [
            Var::Empty,
            Var::Null,
            Var::Bool(true),
            Var::Bool(false),
            Var::I2(-7),
            Var::I4(i32::MIN),
            Var::I8(i64::MAX),
            Var::UI1(200),
            Var::UI4(u32::MAX),
            Var::R4(1.5),
            Var::R8(-0.125),
            Var::Date(46_000.5),
            Var::Tm(HostTm::new(2026, 2, 28, 23, 59, 58)),
            Var::Str(String::new()),
            Var::Str("Привет, мир 🌍\0inner".into()),
            Var::PStr(b"bytes\xff".to_vec()),
            Var::PStr(Vec::new()),
            Var::Blob(vec![0, 1, 2, 255]),
            Var::Blob(Vec::new()),
            Var::Other(VTYPE_CLSID),
        ];
        for v in &values {
            let (back, viol) = round_trip(mm, v);
            assert_eq!(&back, v);
            assert!(viol.is_empty(), "{v:?}: {viol:?}");
        }
        let s = mm.stats();
        assert_eq!(s.outstanding, 0);
        assert_eq!(s.allocs, s.frees);
        assert_eq!(s.allocs, 6, "one buffer per Str/PStr/Blob, even empty ones");
        assert_eq!(s.unknown_frees, 0);
    }

    #[test]
    fn wire_format_of_strings_and_blobs() {
        let m = MemManager::new();
        let mm = &m.state;
        let mut t = encode(mm, &Var::from("ab"));
        assert_eq!(t.vt, VTYPE_PWSTR);
        // SAFETY: encode() wrote the wstr member.
        let w = unsafe { t.payload.wstr };
        assert_eq!(w.len, 2);
        assert_eq!(mm.live_size(w.ptr.cast()), Some(6), "len + 1 units");
        // SAFETY: 3 units were allocated and written by alloc_wstr.
        let units = unsafe { std::slice::from_raw_parts(w.ptr, 3) };
        assert_eq!(units, &[97, 98, 0]);
        release(mm, &mut t);

        let mut t = encode(mm, &Var::Blob(Vec::new()));
        assert_eq!(t.vt, VTYPE_BLOB);
        // SAFETY: encode() wrote the bytes member.
        let b = unsafe { t.payload.bytes };
        assert!(!b.ptr.is_null());
        assert_eq!(b.len, 0);
        release(mm, &mut t);
        assert_eq!(mm.stats().outstanding, 0);
    }

    #[test]
    fn trailing_nul_and_foreign_buffers_are_reported() {
        let m = MemManager::new();
        let mm = &m.state;
        let mut t = TVariant::zeroed();
        t.vt = VTYPE_PWSTR;
        t.payload.wstr = WStr {
            ptr: mm.alloc_wstr(&[104, 105, 0]),
            len: 3,
        };
        let mut viol = Vec::new();
        assert_eq!(
            decode(mm, &t, &mut |s| viol.push(s)),
            Var::Str("hi\0".into())
        );
        assert_eq!(viol.len(), 1, "{viol:?}");
        release(mm, &mut t);

        let mut foreign = [104u16, 0];
        let mut t = TVariant::zeroed();
        t.vt = VTYPE_PWSTR;
        t.payload.wstr = WStr {
            ptr: foreign.as_mut_ptr(),
            len: 1,
        };
        let mut viol = Vec::new();
        assert_eq!(
            decode(mm, &t, &mut |s| viol.push(s)),
            Var::Other(VTYPE_PWSTR)
        );
        assert_eq!(viol.len(), 1);
        release(mm, &mut t);
        assert_eq!(mm.stats().unknown_frees, 1);

        let mut t = TVariant::zeroed();
        t.vt = VTYPE_BOOL;
        t.payload.b = 2;
        let mut viol = Vec::new();
        assert_eq!(decode(mm, &t, &mut |s| viol.push(s)), Var::Bool(true));
        assert_eq!(viol.len(), 1);
    }

    #[test]
    fn tm_and_ole_conversions() {
        let t = HostTm::new(2026, 1, 15, 12, 30, 5);
        let tm = t.to_tm();
        assert_eq!((tm.tm_year, tm.tm_mon, tm.tm_mday), (126, 0, 15));
        assert_eq!(tm.tm_wday, 4, "2026-01-15 is a Thursday");
        assert_eq!(tm.tm_yday, 14);
        assert_eq!(HostTm::from_tm(&tm), Some(t));
        assert_eq!(HostTm::new(1899, 12, 30, 0, 0, 0).to_ole(), 0.0);
        assert_eq!(HostTm::new(1900, 1, 1, 6, 0, 0).to_ole(), 2.25);
        assert_eq!(
            HostTm::from_ole(2.25),
            Some(HostTm::new(1900, 1, 1, 6, 0, 0))
        );
        assert_eq!(
            HostTm::from_ole(-1.25),
            Some(HostTm::new(1899, 12, 29, 6, 0, 0))
        );
        assert_eq!(HostTm::from_ole(t.to_ole()), Some(t));
        assert_eq!(Var::Date(t.to_ole()).as_tm(), Some(t));
    }

    #[test]
    fn accessors() {
        assert_eq!(Var::I4(3).as_f64(), Some(3.0));
        assert_eq!(Var::R8(3.0).as_i64(), Some(3));
        assert_eq!(Var::R8(3.5).as_i64(), None);
        assert_eq!(Var::from("x").as_str(), Some("x"));
        assert_eq!(Var::PStr(b"y".to_vec()).as_str(), Some("y"));
        assert_eq!(Var::Bool(true).as_bool(), Some(true));
        assert_eq!(Var::from(vec![1u8]).as_blob(), Some(&[1u8][..]));
        assert_eq!(Var::Str("1".into()).as_f64(), None);
    }
}
