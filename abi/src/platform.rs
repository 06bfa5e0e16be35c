//! The platform's connection object (`IAddInDefBase` / `IAddInDefBaseEx`), behind a handle
//! that `Done()` disarms.
//!
//! Why a lock around every use: push events are raised from a runtime thread while the
//! platform thread may be inside `Done()`. `emit` holds the lock for the whole
//! `ExternalEvent` call, and `disarm` takes the same lock, so once `disarm` returns no call
//! into the connection is in flight and none can start: nothing reaches 1C after `Done()`,
//! and nothing touches the connection after the platform frees it.

use std::ffi::{c_int, c_long, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

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

struct ConnPtr(NonNull<RawConnection>);

// SAFETY: the platform's connection object may be called from any thread (ABI.md §6.5:
// ExternalEvent from background threads is normal practice); the Mutex in `Connection`
// serialises our calls and `disarm` ends them.
unsafe impl Send for ConnPtr {}

/// The disarmable handle to the platform connection, shared with the push path.
pub struct Connection {
    ptr: Mutex<Option<ConnPtr>>,
}

impl Connection {
    /// Wraps the pointer from `Init`; `None` if null.
    ///
    /// # Safety
    /// `p` is null or a live `IAddInDefBase*` that stays valid until `disarm` is called.
    pub unsafe fn from_raw(p: *mut c_void) -> Option<Connection> {
        NonNull::new(p.cast()).map(|p| Connection {
            ptr: Mutex::new(Some(ConnPtr(p))),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<ConnPtr>> {
        // A panic while holding the lock cannot leave the Option half-written.
        self.ptr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses every later use; waits for a call in flight to finish.
    pub fn disarm(&self) {
        *self.lock() = None;
    }

    /// `AddError(ADDIN_E_FAIL, source, descr, 1)`: with `false` from the entry, this is an
    /// exception in 1C code carrying `descr`.
    pub fn add_error(&self, source: &str, descr: &str) -> bool {
        let guard = self.lock();
        let Some(c) = guard.as_ref() else {
            return false;
        };
        let source = wstr::to_wide_nul(source);
        let descr = wstr::to_wide_nul(descr);
        let this = c.0.as_ptr();
        // SAFETY: the connection is armed, so `this` is live (from_raw's contract); the
        // strings are NUL-terminated and outlive the call (the platform copies them).
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
        let guard = self.lock();
        let Some(c) = guard.as_ref() else {
            return false;
        };
        let depth = c_long::try_from(depth).unwrap_or(c_long::MAX);
        let this = c.0.as_ptr();
        // SAFETY: armed, so live; plain integer argument.
        unsafe { ((*(*this).vtable).set_event_buffer_depth)(this.cast(), depth) }
    }

    /// The application kind from `IPlatformInfo`, asked only when the platform negotiated
    /// capabilities: an older connection object may lack the `GetInterface` slot.
    pub fn app_type(&self) -> AppType {
        if PLATFORM_CAPABILITIES.load(Ordering::Acquire) < 1 {
            return AppType::Unknown;
        }
        let guard = self.lock();
        let Some(c) = guard.as_ref() else {
            return AppType::Unknown;
        };
        let this = c.0.as_ptr();
        // SAFETY: armed, so live; capabilities >= 1 means the object is an IAddInDefBaseEx
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
    fn emit(&self, source: &str, event: &str, data: &str) -> Emit {
        let guard = self.lock();
        let Some(c) = guard.as_ref() else {
            return Emit::Closed;
        };
        let mut source = wstr::to_wide_nul(source);
        let mut event = wstr::to_wide_nul(event);
        let mut data = wstr::to_wide_nul(data);
        let this = c.0.as_ptr();
        // SAFETY: armed under the lock held for the whole call, so `Done()` cannot free the
        // connection meanwhile; the three strings are NUL-terminated and outlive the call.
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
