//! UTF-16 (`WCHAR_T`) strings across the boundary.

/// The longest NUL-terminated string we scan for (in units): names and locales are short,
/// and a missing terminator must not walk through the whole address space.
const MAX_SCAN: usize = 1 << 20;

/// `s` as UTF-16 with a trailing NUL, for calls into the platform (it copies them).
pub fn to_wide_nul(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Reads a NUL-terminated UTF-16 string; null gives "". Unpaired surrogates become U+FFFD.
///
/// # Safety
/// `p` is null or points to readable UTF-16 units up to a NUL (or at least `MAX_SCAN` units).
pub unsafe fn read_nul(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0;
    // SAFETY: the caller guarantees units are readable up to the terminator; we stop there.
    while len < MAX_SCAN && unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units before the terminator were just read one by one.
    unsafe { read_len(p, len) }
}

/// Reads `len` UTF-16 units (no terminator needed); null gives "".
///
/// # Safety
/// `p` is null or points to `len` readable units.
pub unsafe fn read_len(p: *const u16, len: usize) -> String {
    if p.is_null() || len == 0 {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    let units = unsafe { std::slice::from_raw_parts(p, len) };
    String::from_utf16_lossy(units)
}

/// A compile-time NUL-terminated UTF-16 copy of an ASCII literal (for `GetClassNames`,
/// whose string is static and never freed).
pub const fn ascii_wide<const N: usize>(s: &str) -> [u16; N] {
    let bytes = s.as_bytes();
    assert!(bytes.len() + 1 == N, "N must be the length plus the NUL");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii());
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let w = to_wide_nul("Привет, 世界 😀");
        assert_eq!(*w.last().unwrap(), 0);
        // SAFETY: `w` is a live NUL-terminated buffer.
        assert_eq!(unsafe { read_nul(w.as_ptr()) }, "Привет, 世界 😀");
        // SAFETY: `w` holds at least 6 units.
        assert_eq!(unsafe { read_len(w.as_ptr(), 6) }, "Привет");
        // SAFETY: null is allowed.
        assert_eq!(unsafe { read_nul(std::ptr::null()) }, "");
        let lone = [0xD800u16, 0x41, 0];
        // SAFETY: a live NUL-terminated buffer.
        assert_eq!(unsafe { read_nul(lone.as_ptr()) }, "\u{FFFD}A");
    }

    #[test]
    fn const_ascii() {
        const W: [u16; 4] = ascii_wide("a|b");
        assert_eq!(W, [97, 124, 98, 0]);
    }
}
