//! The platform's memory manager (`IMemoryManager`): every buffer handed to 1C comes from
//! here, never from Rust's allocator (ABI.md §6.1).

use std::ffi::{c_ulong, c_void};
use std::ptr::NonNull;

/// `IMemoryManager` vtable: destructor slot(s), then AllocMemory and FreeMemory.
#[repr(C)]
pub struct MemoryManagerVTable {
    _dtor: usize,
    #[cfg(not(windows))]
    _dtor2: usize,
    alloc_memory: unsafe extern "system" fn(*mut c_void, *mut *mut c_void, c_ulong) -> bool,
    free_memory: unsafe extern "system" fn(*mut c_void, *mut *mut c_void),
}

#[repr(C)]
struct RawMemoryManager {
    vtable: *const MemoryManagerVTable,
}

/// The memory manager the platform gave in `setMemManager`, valid until `Done()`.
///
/// Owned by the component object and dropped at `Done()`; it is neither `Copy` nor `Send`
/// (`NonNull`), so it cannot outlive that window or reach a worker thread. ABI.md §6.6:
/// allocate platform buffers only inside platform-initiated calls.
pub struct MemoryManager(NonNull<RawMemoryManager>);

impl MemoryManager {
    /// Wraps the pointer from `setMemManager`; `None` if null.
    ///
    /// # Safety
    /// `p` is null or a live `IMemoryManager*` that stays valid while the handle lives.
    pub unsafe fn from_raw(p: *mut c_void) -> Option<MemoryManager> {
        NonNull::new(p.cast()).map(MemoryManager)
    }

    /// `AllocMemory(bytes)`; `None` if the platform refuses or the size does not fit its
    /// `unsigned long`.
    pub fn alloc(&self, bytes: usize) -> Option<NonNull<u8>> {
        let size = c_ulong::try_from(bytes).ok()?;
        let this = self.0.as_ptr();
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: `this` is a live IMemoryManager (from_raw's contract) whose vtable has the
        // layout above; `out` is a valid place for the result.
        let ok = unsafe { ((*(*this).vtable).alloc_memory)(this.cast(), &mut out, size) };
        if ok { NonNull::new(out.cast()) } else { None }
    }

    /// `FreeMemory(p)` for a buffer the platform allocated (ours or its own).
    pub fn free(&self, p: *mut c_void) {
        if p.is_null() {
            return;
        }
        let this = self.0.as_ptr();
        let mut p = p;
        // SAFETY: as in `alloc`; `p` is a platform buffer whose ownership the caller gives up.
        unsafe { ((*(*this).vtable).free_memory)(this.cast(), &mut p) };
    }

    /// A NUL-terminated UTF-16 copy of `s` in platform memory, and its length in units
    /// without the NUL.
    pub fn alloc_wstr(&self, s: &str) -> Option<(NonNull<u16>, u32)> {
        let units = crate::wstr::utf16_len(s);
        let len = u32::try_from(units).ok()?;
        let bytes = units.checked_add(1)?.checked_mul(2)?;
        let p = self.alloc(bytes)?.cast::<u16>();
        // SAFETY: the buffer holds `units + 1` u16 slots, the platform's allocator aligns at
        // least to 2, and nobody else sees it yet: zeroed first (a slice must not cover
        // uninitialised memory), then viewed as exactly those slots.
        let out = unsafe {
            p.as_ptr().write_bytes(0, units + 1);
            std::slice::from_raw_parts_mut(p.as_ptr(), units + 1)
        };
        crate::wstr::encode_into(s, &mut out[..units]);
        out[units] = 0;
        Some((p, len))
    }

    /// A copy of `data` in platform memory (at least one byte, so the pointer is never
    /// null even for empty data) and its length.
    pub fn alloc_bytes(&self, data: &[u8]) -> Option<(NonNull<u8>, u32)> {
        let len = u32::try_from(data.len()).ok()?;
        let p = self.alloc(data.len().max(1))?;
        // SAFETY: `p` has room for `data.len()` bytes and cannot overlap a Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p.as_ptr(), data.len()) };
        Some((p, len))
    }
}
