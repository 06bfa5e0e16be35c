//! UTF-16 (`WCHAR_T`) strings across the boundary.

/// The longest NUL-terminated string we scan for (in units): names and locales are short,
/// and a missing terminator must not walk through the whole address space.
const MAX_SCAN: usize = 1 << 20;

/// `s` as UTF-16 with a trailing NUL, for calls into the platform (it copies them).
pub fn to_wide_nul(s: &str) -> Vec<u16> {
    let mut w = Vec::new();
    push_wide_nul(&mut w, s);
    w
}

/// Appends `s` as UTF-16 and a NUL to `w`; returns where it starts. Several strings share
/// one buffer this way (the push path reuses it for every event).
pub fn push_wide_nul(w: &mut Vec<u16>, s: &str) -> usize {
    let start = w.len();
    let units = utf16_len(s);
    w.resize(start + units + 1, 0);
    encode_into(s, &mut w[start..start + units]);
    start
}

/// The length of `s` in UTF-16 units, without decoding it: one unit per character (every
/// byte that is not a UTF-8 continuation byte), plus one more for each 4-byte character
/// (those are surrogate pairs in UTF-16).
pub fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        // The common case (JSON headers, most messages), checked a word at a time.
        return s.len();
    }
    s.bytes()
        .map(|b| usize::from((b & 0xC0) != 0x80) + usize::from(b >= 0xF0))
        .sum()
}

/// Writes `s` as UTF-16 into `out`, which holds exactly `utf16_len(s)` units.
pub fn encode_into(s: &str, out: &mut [u16]) {
    if s.is_ascii() {
        // One widening copy over equal-length slices, which the compiler vectorises.
        for (o, b) in out.iter_mut().zip(s.as_bytes()) {
            *o = u16::from(*b);
        }
    } else {
        for (o, u) in out.iter_mut().zip(s.encode_utf16()) {
            *o = u;
        }
    }
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
    from_units(units)
}

/// UTF-16 to a `String`; unpaired surrogates become U+FFFD. ASCII (most messages, every
/// JSON header) is widened byte by byte instead of decoded character by character.
pub fn from_units(units: &[u16]) -> String {
    if units.iter().all(|&u| u < 0x80) {
        let bytes: Vec<u8> = units.iter().map(|&u| u as u8).collect();
        // SAFETY: every byte is below 0x80, so the bytes are ASCII and thus valid UTF-8.
        return unsafe { String::from_utf8_unchecked(bytes) };
    }
    // Cyrillic and the rest of the BMP take 2-3 bytes per unit; reserve for 2 to avoid
    // growing a typical Russian text more than once.
    let mut s = String::with_capacity(units.len() * 2);
    s.extend(char::decode_utf16(units.iter().copied()).map(|c| c.unwrap_or('\u{FFFD}')));
    s
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
    fn lengths_and_fast_paths_agree_with_std() {
        for s in [
            "",
            "abc",
            "Привет",
            "世界",
            "😀x",
            "a😀б世",
            "{\"Event\":1}",
        ] {
            let std_units: Vec<u16> = s.encode_utf16().collect();
            assert_eq!(utf16_len(s), std_units.len(), "{s}");
            let mut out = vec![0u16; utf16_len(s)];
            encode_into(s, &mut out);
            assert_eq!(out, std_units, "{s}");
            let mut w = to_wide_nul(s);
            assert_eq!(w.pop(), Some(0));
            assert_eq!(w, std_units);
            assert_eq!(from_units(&std_units), s);
        }
        assert_eq!(from_units(&[0x41, 0xDC00, 0x42]), "A\u{FFFD}B");
    }

    #[test]
    fn strings_pushed_into_one_buffer_keep_their_own_terminators() {
        let mut w = vec![7u16];
        let (a, b, c) = (
            push_wide_nul(&mut w, "ab"),
            push_wide_nul(&mut w, ""),
            push_wide_nul(&mut w, "я😀"),
        );
        assert_eq!((a, b, c), (1, 4, 5));
        assert_eq!(w, [7, 0x61, 0x62, 0, 0, 0x44F, 0xD83D, 0xDE00, 0]);
        // SAFETY: each offset starts a NUL-terminated string inside the live buffer.
        assert_eq!(unsafe { read_nul(w[c..].as_ptr()) }, "я😀");
    }

    #[test]
    fn const_ascii() {
        const W: [u16; 4] = ascii_wide("a|b");
        assert_eq!(W, [97, 124, 98, 0]);
    }
}
