//! Gives freed heap memory back to the system after a connection that queued a lot.
//!
//! Why: glibc keeps the pages of freed large buffers (a send queue of a peer that stopped
//! reading can hold 16 MiB) in its arenas, so the 1C process would stay at its peak long after
//! the connection ended. `malloc_trim(0)` returns whole free pages of every arena; the add-in
//! calls it (through [`ws1c::runtime::set_memory_trim`]) only when such a connection ends,
//! never changes the allocator's settings for the rest of the process.

/// Installs the trim once per process.
pub fn install() {
    ws1c::runtime::set_memory_trim(trim);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; 0 keeps no pad.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Elsewhere (Windows, musl) the allocator returns large blocks by itself: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
