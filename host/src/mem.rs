//! The emulated `IMemoryManager`: a counting allocator shared by every object of one host.

use std::alloc::Layout;
use std::collections::HashMap;
use std::ffi::{c_ulong, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::ffi::{DTOR_SLOTS, MemVtbl};
use crate::{guard, lock, unexpected_dtor};

/// Alignment of every block handed out (what a `malloc`-like platform allocator gives).
const ALIGN: usize = 8;

/// Counters of a host's memory manager, as returned by [`crate::Host::mem`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Successful allocations (by the add-in through `AllocMemory` and by the host itself).
    pub allocs: u64,
    /// Successful frees of live blocks.
    pub frees: u64,
    /// Blocks allocated and not yet freed.
    pub outstanding: u64,
    /// Bytes (as requested) in the outstanding blocks.
    pub outstanding_bytes: u64,
    /// `FreeMemory` calls with a pointer this manager did not hand out or already freed
    /// (nothing is freed for them).
    pub unknown_frees: u64,
    /// `FreeMemory` calls with `*block == NULL` (harmless, counted separately).
    pub null_frees: u64,
    /// Calls through the vtable while no object of the host was alive (created and not yet
    /// `Done`), e.g. from `DestroyObject` or from a thread that outlived `Done`.
    pub calls_after_all_done: u64,
    /// Calls through the vtable while the host was not inside any call into the add-in (a lower
    /// bound: with several threads calling concurrently some are missed). ABI.md §6.6 says
    /// platform buffers should only be allocated inside platform-initiated calls.
    pub calls_outside_platform_calls: u64,
}

/// Shared state of the memory manager; also carries the host-wide "object alive" and
/// "inside a call" counters that the vtable entry points check.
pub(crate) struct MemState {
    /// Live blocks: address (provenance exposed at allocation) -> requested size.
    live: Mutex<HashMap<usize, usize>>,
    allocs: AtomicU64,
    frees: AtomicU64,
    unknown_frees: AtomicU64,
    null_frees: AtomicU64,
    calls_after_all_done: AtomicU64,
    calls_outside: AtomicU64,
    /// Objects created (GetClassObject attempted) and not yet through `Done`.
    active_objects: AtomicUsize,
    /// Host -> add-in calls currently in flight (all threads).
    in_calls: AtomicUsize,
    /// Protocol violations seen by the memory manager (e.g. `FreeMemory(NULL)` as `void**`).
    violations: Mutex<Vec<String>>,
}

/// Outcome of a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FreeOutcome {
    /// A live block was released.
    Released,
    /// The pointer was null.
    Null,
    /// The pointer was not a live block; nothing was released.
    Unknown,
}

impl MemState {
    fn new() -> MemState {
        MemState {
            live: Mutex::new(HashMap::new()),
            allocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            unknown_frees: AtomicU64::new(0),
            null_frees: AtomicU64::new(0),
            calls_after_all_done: AtomicU64::new(0),
            calls_outside: AtomicU64::new(0),
            active_objects: AtomicUsize::new(0),
            in_calls: AtomicUsize::new(0),
            violations: Mutex::new(Vec::new()),
        }
    }

    fn layout(size: usize) -> Option<Layout> {
        Layout::from_size_align(size.max(1), ALIGN).ok()
    }

    /// Allocates `size` bytes (at least 1 byte is reserved so the pointer is unique and
    /// non-null). Returns null if the size is absurd or the allocator fails.
    pub(crate) fn alloc(&self, size: usize) -> *mut u8 {
        let Some(layout) = Self::layout(size) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `layout` has a non-zero size (size.max(1)) and a valid power-of-two alignment.
        let p = unsafe { std::alloc::alloc(layout) };
        if !p.is_null() {
            lock(&self.live).insert(p.expose_provenance(), size);
            self.allocs.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    /// Frees `p` if it is a live block of this manager; counts it otherwise.
    pub(crate) fn free(&self, p: *mut c_void) -> FreeOutcome {
        if p.is_null() {
            self.null_frees.fetch_add(1, Ordering::Relaxed);
            return FreeOutcome::Null;
        }
        let removed = lock(&self.live).remove(&(p as usize));
        match removed {
            Some(size) => {
                let layout = Self::layout(size).expect("layout was valid at allocation");
                // SAFETY: `p` was returned by `std::alloc::alloc` with exactly this layout (the
                // map records the requested size, and `layout` is a pure function of it), and it
                // was just removed from the live map, so it is freed exactly once.
                unsafe { std::alloc::dealloc(p.cast(), layout) };
                self.frees.fetch_add(1, Ordering::Relaxed);
                FreeOutcome::Released
            }
            None => {
                self.unknown_frees.fetch_add(1, Ordering::Relaxed);
                FreeOutcome::Unknown
            }
        }
    }

    /// Size of the live block starting exactly at `p`, if any.
    pub(crate) fn live_size(&self, p: *const c_void) -> Option<usize> {
        lock(&self.live).get(&(p as usize)).copied()
    }

    /// Allocates `units` plus a trailing NUL, copies `units` in; returns the buffer.
    pub(crate) fn alloc_wstr(&self, units: &[u16]) -> *mut u16 {
        let p = self.alloc((units.len() + 1) * 2).cast::<u16>();
        assert!(!p.is_null(), "host memory manager: out of memory");
        // SAFETY: `p` is a fresh, 8-aligned block of (len + 1) * 2 bytes, so it holds len + 1
        // u16 values; the source slice cannot overlap a fresh allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(units.as_ptr(), p, units.len());
            p.add(units.len()).write(0);
        }
        p
    }

    /// Allocates `max(len, 1)` bytes and copies `bytes` in; returns the buffer (never null).
    pub(crate) fn alloc_bytes(&self, bytes: &[u8]) -> *mut u8 {
        let p = self.alloc(bytes.len());
        assert!(!p.is_null(), "host memory manager: out of memory");
        // SAFETY: `p` is a fresh block of at least `bytes.len()` bytes; no overlap is possible.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
        p
    }

    pub(crate) fn stats(&self) -> MemStats {
        let (outstanding, outstanding_bytes) = {
            let live = lock(&self.live);
            (live.len() as u64, live.values().map(|&s| s as u64).sum())
        };
        MemStats {
            allocs: self.allocs.load(Ordering::Relaxed),
            frees: self.frees.load(Ordering::Relaxed),
            outstanding,
            outstanding_bytes,
            unknown_frees: self.unknown_frees.load(Ordering::Relaxed),
            null_frees: self.null_frees.load(Ordering::Relaxed),
            calls_after_all_done: self.calls_after_all_done.load(Ordering::Relaxed),
            calls_outside_platform_calls: self.calls_outside.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn violation(&self, text: String) {
        crate::conn::push_capped(&mut lock(&self.violations), text);
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        lock(&self.violations).clone()
    }

    /// An object's life started (before `GetClassObject`).
    pub(crate) fn object_started(&self) {
        self.active_objects.fetch_add(1, Ordering::SeqCst);
    }

    /// An object's `Done` returned (or its creation failed before there was an object).
    pub(crate) fn object_done(&self) {
        self.active_objects.fetch_sub(1, Ordering::SeqCst);
    }

    /// Marks a host -> add-in call in flight until the guard is dropped.
    pub(crate) fn enter_call(&self) -> InCall<'_> {
        self.in_calls.fetch_add(1, Ordering::SeqCst);
        InCall(self)
    }

    /// Bookkeeping for every call that arrives through the vtable.
    fn note_vtable_call(&self) {
        if self.active_objects.load(Ordering::SeqCst) == 0 {
            self.calls_after_all_done.fetch_add(1, Ordering::Relaxed);
        }
        if self.in_calls.load(Ordering::SeqCst) == 0 {
            self.calls_outside.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for MemState {
    fn drop(&mut self) {
        // Blocks the add-in leaked were already reported through `outstanding`; release them so
        // the host itself leaks nothing (valgrind runs).
        let live = std::mem::take(self.live.get_mut().unwrap_or_else(|e| e.into_inner()));
        for (addr, size) in live {
            let layout = Self::layout(size).expect("layout was valid at allocation");
            // SAFETY: every address in the map came from `std::alloc::alloc` with this layout
            // and has not been freed (freeing removes it from the map).
            unsafe { std::alloc::dealloc(std::ptr::with_exposed_provenance_mut(addr), layout) };
        }
    }
}

/// Guard returned by [`MemState::enter_call`].
pub(crate) struct InCall<'a>(&'a MemState);

impl Drop for InCall<'_> {
    fn drop(&mut self) {
        self.0.in_calls.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The object handed to the add-in as `IMemoryManager*`: the vptr first, then the state.
/// It lives inside the host's shared state (`Arc`), so its address is stable for the host's
/// whole life; the add-in only ever gets shared access (all state is behind atomics/mutexes).
#[repr(C)]
pub(crate) struct MemManager {
    vtbl: &'static MemVtbl,
    pub(crate) state: MemState,
}

static MEM_VTBL: MemVtbl = MemVtbl {
    dtor: [unexpected_dtor; DTOR_SLOTS],
    alloc_memory: mm_alloc_memory,
    free_memory: mm_free_memory,
};

impl MemManager {
    pub(crate) fn new() -> MemManager {
        MemManager {
            vtbl: &MEM_VTBL,
            state: MemState::new(),
        }
    }

    /// The `IMemoryManager*` to give to the add-in.
    pub(crate) fn as_iface(&self) -> *mut c_void {
        (self as *const MemManager).cast_mut().cast()
    }
}

/// Recovers the manager from the `this` the add-in passes.
///
/// # Safety
/// `this` must be null or a pointer obtained from [`MemManager::as_iface`] whose host is alive.
unsafe fn manager<'a>(this: *mut c_void) -> Option<&'a MemManager> {
    // SAFETY: per the contract `this` is null or points to a live MemManager; only shared
    // references are created and every field is Sync.
    unsafe { this.cast::<MemManager>().cast_const().as_ref() }
}

/// `bool AllocMemory(void** out, unsigned long bytes)`.
unsafe extern "system" fn mm_alloc_memory(
    this: *mut c_void,
    out: *mut *mut c_void,
    bytes: c_ulong,
) -> bool {
    guard(false, || {
        // SAFETY: the add-in calls this slot with the IMemoryManager* we gave it; the manager
        // lives as long as the host (objects keep the host state alive).
        let Some(mm) = (unsafe { manager(this) }) else {
            return false;
        };
        let st = &mm.state;
        st.note_vtable_call();
        if out.is_null() {
            st.violation("AllocMemory called with a null `void** out`".into());
            return false;
        }
        let p = match usize::try_from(bytes) {
            Ok(size) => st.alloc(size),
            Err(_) => std::ptr::null_mut(),
        };
        // SAFETY: `out` is non-null and, per the IMemoryManager contract, points to a writable
        // `void*` owned by the caller.
        unsafe { out.write(p.cast()) };
        !p.is_null()
    })
}

/// `void FreeMemory(void** block)`.
unsafe extern "system" fn mm_free_memory(this: *mut c_void, block: *mut *mut c_void) {
    guard((), || {
        // SAFETY: as in `mm_alloc_memory`.
        let Some(mm) = (unsafe { manager(this) }) else {
            return;
        };
        let st = &mm.state;
        st.note_vtable_call();
        if block.is_null() {
            st.violation("FreeMemory called with a null `void** block`".into());
            return;
        }
        // SAFETY: `block` is non-null and points to the caller's `void*` (contract of FreeMemory).
        let p = unsafe { block.read() };
        st.free(p);
        // SAFETY: same pointer as just read; the platform nulls the caller's pointer.
        unsafe { block.write(std::ptr::null_mut()) };
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vt(mm: &MemManager) -> &'static MemVtbl {
        // SAFETY: the first field of a repr(C) MemManager is the vptr; read it the way an
        // add-in does.
        unsafe { *(mm.as_iface() as *const &'static MemVtbl) }
    }

    #[test]
    fn counts_alloc_free_unknown() {
        let mm = MemManager::new();
        let this = mm.as_iface();
        let v = vt(&mm);
        let mut a: *mut c_void = std::ptr::null_mut();
        let mut b: *mut c_void = std::ptr::null_mut();
        // SAFETY: `this` is a live manager and the out pointers are valid locals.
        unsafe {
            assert!((v.alloc_memory)(this, &mut a, 10));
            assert!((v.alloc_memory)(this, &mut b, 0));
        }
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(a as usize % ALIGN, 0);
        let s = mm.state.stats();
        assert_eq!((s.allocs, s.outstanding, s.outstanding_bytes), (2, 2, 10));
        // No object is alive and no call is in flight: both are counted.
        assert_eq!(s.calls_after_all_done, 2);
        assert_eq!(s.calls_outside_platform_calls, 2);

        let a_copy = a;
        // SAFETY: valid manager and pointers.
        unsafe { (v.free_memory)(this, &mut a) };
        assert!(a.is_null(), "FreeMemory nulls the pointer");
        let mut again = a_copy;
        // SAFETY: valid manager; `again` is a stale pointer, which the manager must only count.
        unsafe { (v.free_memory)(this, &mut again) };
        assert!(again.is_null());
        let mut bogus = 0x1000usize as *mut c_void;
        // SAFETY: valid manager; bogus pointer is only looked up, never dereferenced.
        unsafe { (v.free_memory)(this, &mut bogus) };
        let mut null: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid manager and pointer.
        unsafe { (v.free_memory)(this, &mut null) };
        let s = mm.state.stats();
        assert_eq!(s.frees, 1);
        assert_eq!(s.unknown_frees, 2);
        assert_eq!(s.null_frees, 1);
        assert_eq!((s.outstanding, s.outstanding_bytes), (1, 0));

        // SAFETY: valid manager and pointer.
        unsafe { (v.free_memory)(this, &mut b) };
        assert_eq!(mm.state.stats().outstanding, 0);
    }

    #[test]
    fn inside_calls_are_not_flagged() {
        let mm = MemManager::new();
        mm.state.object_started();
        let g = mm.state.enter_call();
        let mut a: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid manager and out pointer.
        unsafe { assert!((vt(&mm).alloc_memory)(mm.as_iface(), &mut a, 3)) };
        drop(g);
        // SAFETY: valid manager and pointer.
        unsafe { (vt(&mm).free_memory)(mm.as_iface(), &mut a) };
        let s = mm.state.stats();
        assert_eq!(s.calls_after_all_done, 0);
        assert_eq!(s.calls_outside_platform_calls, 1);
        mm.state.object_done();
    }

    #[test]
    fn leaked_blocks_released_on_drop() {
        let mm = MemManager::new();
        let _ = mm.state.alloc_wstr(&[65, 66]);
        let _ = mm.state.alloc_bytes(&[]);
        assert_eq!(mm.state.stats().outstanding, 2);
        drop(mm); // must not leak (checked under valgrind/miri)
    }
}
