//! The platform's connection object (`IAddInDefBase` / `IAddInDefBaseEx`), behind a handle
//! that `Done()` disarms.
//!
//! Why an in-flight count and no lock across a call: push events are raised from the
//! object's pusher thread while the platform's thread may be inside `AddError` or `Done()`.
//! Holding a lock for the whole `ExternalEvent` call (as the first version did) means that
//! an `ExternalEvent` that waits on something the 1C thread holds (its UI queue, a lock of
//! its own) deadlocks with a 1C thread waiting for that lock in `AddError`. So every call
//! only *registers* under the lock (armed? then `in_flight += 1`), makes the platform call
//! with no lock held, and deregisters afterwards. `AddError` and `ExternalEvent` may then run
//! at the same time, as the platform allows. `disarm` clears `armed` (no call can start
//! after that) and waits, with a bound, until the calls in flight have returned: once it
//! returns, nothing reaches 1C after `Done()`, and nothing touches the connection after the
//! platform frees it. If the bound expires (a platform call that never returns), the
//! straggler is inside the platform's own code; we stop waiting rather than hang 1C.

use std::ffi::{c_int, c_long, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ws1c::platform::{AppType, Emit, EventSink};

use crate::wstr;

/// `IAddInDefBase` (+ `GetInterface` of `IAddInDefBaseEx`) vtable, ABI.md §3.3.
#[repr(C)]
pub struct AddInDefBaseVTable {
    _dtor: usize,
    #[cfg(not(windows))]
    _dtor2: usize,
    add_error: unsafe extern "system" fn(*mut c_void, u16, *const u16, *const u16, c_long) -> bool,
    _read: usize,
    _write: usize,
    _register_profile_as: usize,
    set_event_buffer_depth: unsafe extern "system" fn(*mut c_void, c_long) -> bool,
    _get_event_buffer_depth: usize,
    external_event: unsafe extern "system" fn(*mut c_void, *mut u16, *mut u16, *mut u16) -> bool,
    _clean_event_buffer: usize,
    _set_status_line: usize,
    _reset_status_line: usize,
    /// Present only on `IAddInDefBaseEx`: read only after capabilities were negotiated.
    get_interface: unsafe extern "system" fn(*mut c_void, c_int) -> *mut c_void,
}

#[repr(C)]
struct RawConnection {
    vtable: *const AddInDefBaseVTable,
}

/// `IPlatformInfo` vtable: no destructor (it derives from the empty `IInterface`).
#[repr(C)]
struct PlatformInfoVTable {
    get_platform_info: unsafe extern "system" fn(*mut c_void) -> *const AppInfo,
}

#[repr(C)]
struct RawPlatformInfo {
    vtable: *const PlatformInfoVTable,
}

/// `AppInfo`.
#[repr(C)]
struct AppInfo {
    _app_version: *const u16,
    _user_agent: *const u16,
    application: c_int,
}

/// `Interfaces::eIPlatformInfo`.
const E_IPLATFORM_INFO: c_int = 1;
/// `ADDIN_E_FAIL`.
pub const ADDIN_E_FAIL: u16 = 1006;

/// What the platform announced in `SetPlatformCapabilities` (0 if it never called it).
pub static PLATFORM_CAPABILITIES: AtomicI32 = AtomicI32::new(0);

/// Whether calls may start, and how many are in the platform now.
struct Gate {
    armed: bool,
    in_flight: usize,
}

/// The disarmable handle to the platform connection, shared with the push path.
pub struct Connection {
    /// Never dereferenced unless a call was admitted by `gate` (armed at its start).
    ptr: NonNull<RawConnection>,
    gate: Mutex<Gate>,
    /// Signalled when `in_flight` drops to 0 while disarmed.
    idle: Condvar,
}

// SAFETY: the platform's connection object may be called from any thread (ABI.md §6.5:
// ExternalEvent from background threads is normal practice); `gate` admits calls only while
// armed and `disarm` waits for those in flight, so the pointer is used only while live.
unsafe impl Send for Connection {}
// SAFETY: as above; every field but the pointer is synchronised.
unsafe impl Sync for Connection {}

/// Holds one admitted call; deregisters it on drop (also on unwind).
struct Admission<'a> {
    conn: &'a Connection,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let mut g = self.conn.lock();
        g.in_flight -= 1;
        if g.in_flight == 0 && !g.armed {
            self.conn.idle.notify_all();
        }
    }
}

impl Connection {
    /// Wraps the pointer from `Init`; `None` if null.
    ///
    /// # Safety
    /// `p` is null or a live `IAddInDefBase*` that stays valid until `disarm` is called.
    pub unsafe fn from_raw(p: *mut c_void) -> Option<Connection> {
        NonNull::new(p.cast()).map(|ptr| Connection {
            ptr,
            gate: Mutex::new(Gate {
                armed: true,
                in_flight: 0,
            }),
            idle: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Gate> {
        // The gate's two fields are written together; a panic cannot leave them torn.
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one call, or `None` once disarmed. The lock is released before returning.
    fn admit(&self) -> Option<Admission<'_>> {
        let mut g = self.lock();
        if !g.armed {
            return None;
        }
        g.in_flight += 1;
        Some(Admission { conn: self })
    }

    /// Refuses every later call and waits, at most `wait`, for the calls in flight. True if
    /// none is left in the platform.
    pub fn disarm(&self, wait: Duration) -> bool {
        let mut g = self.lock();
        g.armed = false;
        let (g, _) = self
            .idle
            .wait_timeout_while(g, wait, |g| g.in_flight > 0)
            .unwrap_or_else(|e| e.into_inner());
        g.in_flight == 0
    }

    /// Calls currently inside the platform (for tests and the log).
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// `AddError(ADDIN_E_FAIL, source, descr, 1)`: with `false` from the entry, this is an
    /// exception in 1C code carrying `descr`.
    pub fn add_error(&self, source: &str, descr: &str) -> bool {
        let Some(_call) = self.admit() else {
            return false;
        };
        let source = wstr::to_wide_nul(source);
        let descr = wstr::to_wide_nul(descr);
        let this = self.ptr.as_ptr();
        // SAFETY: admitted while armed, and `disarm` waits for this admission to end, so
        // `this` is live (from_raw's contract); the strings are NUL-terminated and outlive
        // the call (the platform copies them).
        unsafe {
            ((*(*this).vtable).add_error)(
                this.cast(),
                ADDIN_E_FAIL,
                source.as_ptr(),
                descr.as_ptr(),
                1,
            )
        }
    }

    /// `SetEventBufferDepth(depth)`.
    pub fn set_event_buffer_depth(&self, depth: i64) -> bool {
        let Some(_call) = self.admit() else {
            return false;
        };
        let depth = c_long::try_from(depth).unwrap_or(c_long::MAX);
        let this = self.ptr.as_ptr();
        // SAFETY: admitted while armed, so live until the admission ends; an integer argument.
        unsafe { ((*(*this).vtable).set_event_buffer_depth)(this.cast(), depth) }
    }

    /// The application kind from `IPlatformInfo`, asked only when the platform negotiated
    /// capabilities: an older connection object may lack the `GetInterface` slot.
    pub fn app_type(&self) -> AppType {
        if PLATFORM_CAPABILITIES.load(Ordering::Acquire) < 1 {
            return AppType::Unknown;
        }
        let Some(_call) = self.admit() else {
            return AppType::Unknown;
        };
        let this = self.ptr.as_ptr();
        // SAFETY: admitted while armed, so live; capabilities >= 1 means the object is an IAddInDefBaseEx
        // whose vtable has the GetInterface slot.
        let info = unsafe { ((*(*this).vtable).get_interface)(this.cast(), E_IPLATFORM_INFO) };
        let Some(info) = NonNull::new(info.cast::<RawPlatformInfo>()) else {
            return AppType::Unknown;
        };
        // SAFETY: GetInterface(eIPlatformInfo) returns an IPlatformInfo* (vtable slot 0,
        // no destructor slots) owned by the platform and valid with the connection.
        let app = unsafe {
            let p = info.as_ptr();
            ((*(*p).vtable).get_platform_info)(p.cast())
                .as_ref()
                .map(|a| a.application)
        };
        app.map_or(AppType::Unknown, AppType::from_code)
    }
}

impl EventSink for Connection {
    fn set_buffer_depth(&self, depth: usize) -> bool {
        self.set_event_buffer_depth(i64::try_from(depth).unwrap_or(i64::MAX))
    }

    fn emit(&self, source: &str, event: &str, data: &str) -> Emit {
        let Some(_call) = self.admit() else {
            return Emit::Closed;
        };
        let mut source = wstr::to_wide_nul(source);
        let mut event = wstr::to_wide_nul(event);
        let mut data = wstr::to_wide_nul(data);
        let this = self.ptr.as_ptr();
        // SAFETY: admitted while armed, and `disarm` (in `Done()`) waits for the admission to
        // end, so the connection is live for the whole call although no lock is held; the
        // three strings are NUL-terminated and outlive the call.
        let ok = unsafe {
            ((*(*this).vtable).external_event)(
                this.cast(),
                source.as_mut_ptr(),
                event.as_mut_ptr(),
                data.as_mut_ptr(),
            )
        };
        if ok { Emit::Delivered } else { Emit::Refused }
    }
}
