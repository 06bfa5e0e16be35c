//! The Native API's data types: `tVariant`, `struct tm`, the type tags, and layout asserts
//! for every target we ship (ABI.md §2).

use std::ffi::{c_char, c_int, c_long, c_void};

/// `VTYPE_*` tags (ABI.md §2.2).
#[allow(missing_docs)]
pub mod vt {
    pub const EMPTY: u16 = 0;
    pub const NULL: u16 = 1;
    pub const I2: u16 = 2;
    pub const I4: u16 = 3;
    pub const R4: u16 = 4;
    pub const R8: u16 = 5;
    pub const DATE: u16 = 6;
    pub const TM: u16 = 7;
    pub const PSTR: u16 = 8;
    pub const ERROR: u16 = 10;
    pub const BOOL: u16 = 11;
    pub const I1: u16 = 13;
    pub const UI1: u16 = 14;
    pub const UI2: u16 = 15;
    pub const UI4: u16 = 16;
    pub const I8: u16 = 17;
    pub const UI8: u16 = 18;
    pub const INT: u16 = 19;
    pub const UINT: u16 = 20;
    pub const HRESULT: u16 = 21;
    pub const PWSTR: u16 = 22;
    pub const BLOB: u16 = 23;
    /// Mask of the type bits (the flags above it are never used by the platform).
    pub const TYPEMASK: u16 = 0x0fff;
}

/// The platform's `struct tm`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Tm {
    pub tm_sec: c_int,
    pub tm_min: c_int,
    pub tm_hour: c_int,
    pub tm_mday: c_int,
    pub tm_mon: c_int,
    pub tm_year: c_int,
    pub tm_wday: c_int,
    pub tm_yday: c_int,
    pub tm_isdst: c_int,
    #[cfg(unix)]
    pub tm_gmtoff: c_long,
    #[cfg(unix)]
    pub tm_zone: *const c_char,
}

/// A pointer plus a length: `{pstrVal, strLen}` (bytes) or `{pwstrVal, wstrLen}` (UTF-16
/// units, the NUL never counted).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Buf<T> {
    pub ptr: *mut T,
    pub len: u32,
}

/// The payload union of `tVariant`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union Payload {
    pub b: u8,
    pub i8: i8,
    pub i16: i16,
    pub i32: i32,
    pub i64: i64,
    pub u8: u8,
    pub u16: u16,
    pub u32: u32,
    pub u64: u64,
    pub int: c_int,
    pub long: c_long,
    pub f32: f32,
    pub f64: f64,
    pub tm: Tm,
    pub bytes: Buf<u8>,
    pub wstr: Buf<u16>,
    pub ptr: *mut c_void,
    pub iid: [u8; 16],
}

/// `tVariant`: the union, `cbElements`, then the type tag.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TVariant {
    pub u: Payload,
    pub cb_elements: u32,
    pub vt: u16,
}

impl TVariant {
    /// An all-zero variant (`VTYPE_EMPTY`).
    pub fn zeroed() -> TVariant {
        TVariant {
            u: Payload { iid: [0; 16] },
            cb_elements: 0,
            vt: vt::EMPTY,
        }
    }
}

// Layout, per target (ABI.md §2.1). The compiler checks these on every build for the
// target being built; the C++ host cross-checks Linux x86_64 with g++.
#[cfg(all(unix, target_pointer_width = "64"))]
const _: () = {
    assert!(size_of::<Tm>() == 56);
    assert!(size_of::<TVariant>() == 64);
    assert!(align_of::<TVariant>() == 8);
    assert!(std::mem::offset_of!(TVariant, cb_elements) == 56);
    assert!(std::mem::offset_of!(TVariant, vt) == 60);
    assert!(std::mem::offset_of!(Buf<u16>, len) == 8);
};

#[cfg(all(windows, target_pointer_width = "64"))]
const _: () = {
    assert!(size_of::<Tm>() == 36);
    assert!(size_of::<TVariant>() == 48);
    assert!(std::mem::offset_of!(TVariant, cb_elements) == 40);
    assert!(std::mem::offset_of!(TVariant, vt) == 44);
    assert!(std::mem::offset_of!(Buf<u16>, len) == 8);
    assert!(size_of::<c_long>() == 4);
};

#[cfg(all(windows, target_pointer_width = "32"))]
const _: () = {
    assert!(size_of::<Tm>() == 36);
    assert!(size_of::<TVariant>() == 48);
    assert!(std::mem::offset_of!(TVariant, cb_elements) == 40);
    assert!(std::mem::offset_of!(TVariant, vt) == 44);
    assert!(std::mem::offset_of!(Buf<u16>, len) == 4);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_empty() {
        let v = TVariant::zeroed();
        assert_eq!(v.vt, vt::EMPTY);
        assert_eq!(v.cb_elements, 0);
    }
}
