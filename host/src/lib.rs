//! `ws1c-host`: an emulated 1C:Enterprise platform for tests.
//!
//! The real platform cannot run here, so this crate plays its part: it loads the add-in
//! (`libwebsocket1c.so`) with `dlopen` and drives it purely through the C exports and the
//! C++-style vtables described in `shared/ABI.md`, exactly as 1C does. It is written
//! independently of the add-in's own Rust code so that it cross-checks it.
//!
//! Architecture:
//! * [`Host`] — one loaded library plus one counting memory manager (`IMemoryManager`, see
//!   [`MemStats`]) shared by all objects of that host. The library is never unloaded (ABI.md
//!   §5.1: the platform does not unload it either, and `dlclose` of a Rust cdylib with live
//!   threads is unsafe).
//! * [`Obj`] — one component object created by [`Host::create`] with the platform's call
//!   sequence; safe methods for discovery, properties and method calls with by-ref arguments.
//! * [`Conn`] — the emulated connection (`IAddInDefBaseEx`, `IPlatformInfo`, `IAttachedInfo`) of
//!   one object: records `AddError` and `ExternalEvent` from any thread, emulates the event
//!   buffer and the server, counts calls made after `Done`.
//! * [`Var`] — values as sent to / read from the add-in (`tVariant`, declared in [`ffi`]).
//!
//! All `unsafe` code is inside this crate; every callback the add-in can call is panic-free
//! (its body runs under `catch_unwind` and returns a failure value).

#![deny(missing_docs)]

pub mod ffi;

mod conn;
mod host;
mod mem;
mod var;

#[cfg(test)]
mod mock;

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use conn::{APP_VERSION, Conn, ErrorRecord, Event, USER_AGENT};
pub use host::{
    CallError, Exports, Host, HostError, HostOptions, Obj, Prepared, default_library_path,
};
pub use mem::MemStats;
pub use var::{HostTm, Var};

/// Locks a mutex, ignoring poisoning (a panic elsewhere must not cascade into the callbacks).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the body of a callback that the add-in calls; a panic becomes `fail` (it must never
/// unwind into the add-in's C++-ABI frames).
pub(crate) fn guard<R>(fail: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fail)
}

static UNEXPECTED_DTOR_CALLS: AtomicU64 = AtomicU64::new(0);

/// Fills the destructor slots of the host's own interfaces. The add-in must never call them
/// (ABI.md §3.5: nobody deletes the other side's objects); a call is only counted.
pub(crate) unsafe extern "system" fn unexpected_dtor(_this: *mut c_void) {
    UNEXPECTED_DTOR_CALLS.fetch_add(1, Ordering::SeqCst);
}

/// Number of times (process-wide, all hosts) the add-in called a destructor slot of a
/// host-implemented interface (memory manager, connection). Must stay 0.
pub fn unexpected_destructor_calls() -> u64 {
    UNEXPECTED_DTOR_CALLS.load(Ordering::SeqCst)
}

/// Loads the library afresh, creates and destroys one `Client` through the raw exports,
/// unloads it (`dlclose`) and reports whether its image is still mapped, which is what
/// pinning must guarantee. Meaningful only as the first load of the library in a process.
pub fn stays_mapped_after_unload(path: &std::path::Path) -> Result<bool, String> {
    type GetClassObject = unsafe extern "C" fn(*const u16, *mut *mut c_void) -> std::ffi::c_long;
    type DestroyObject = unsafe extern "C" fn(*mut *mut c_void) -> std::ffi::c_long;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("bad path")?
        .to_owned();
    // SAFETY: loading our own add-in, whose initialisers are trivial.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    {
        // SAFETY: the exports have exactly these C signatures (ABI.md §4).
        let (create, destroy) = unsafe {
            (
                lib.get::<GetClassObject>(b"GetClassObject\0")
                    .map_err(|e| e.to_string())?,
                lib.get::<DestroyObject>(b"DestroyObject\0")
                    .map_err(|e| e.to_string())?,
            )
        };
        let class: Vec<u16> = "Client".encode_utf16().chain(std::iter::once(0)).collect();
        let mut obj: *mut c_void = std::ptr::null_mut();
        // SAFETY: a NUL-terminated name and a writable out pointer; the object is destroyed
        // right away without Init (the add-in must cope, as with a platform that fails).
        unsafe {
            if create(class.as_ptr(), &mut obj) == 0 || obj.is_null() {
                return Err("GetClassObject failed".into());
            }
            if destroy(&mut obj) != 0 {
                return Err("DestroyObject failed".into());
            }
        }
    }
    lib.close().map_err(|e| e.to_string())?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    Ok(maps.lines().any(|l| l.ends_with(&name)))
}

/// Raises this process's soft limit on open files to its hard limit (benchmarks that hold
/// thousands of connections need it); returns the new soft limit.
#[cfg(unix)]
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit read back from the kernel, soft raised to hard.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // rlim_t is u64 on Linux, other widths elsewhere.
    #[allow(clippy::useless_conversion)]
    Ok(u64::try_from(lim.rlim_cur).unwrap_or(u64::MAX))
}
