//! The platform's connection object (`IAddInDefBase` / `IAddInDefBaseEx`), behind a handle
//! that `Done()` disarms.
//!
//! Why an in-flight count and no lock across a call: push events are raised from the
//! object's pusher thread while the platform's thread may be inside `AddError` or `Done()`.
//! Holding a lock for the whole `ExternalEvent` call (as the first version did) means that
//! an `ExternalEvent` that waits on something the 1C thread holds (its UI queue, a lock of
//! its own) deadlocks with a 1C thread waiting for that lock in `AddError`. So every call
//! only *registers* (armed? then one more in flight), makes the platform call
//! with no lock held, and deregisters afterwards. `AddError` and `ExternalEvent` may then run
//! at the same time, as the platform allows. `disarm` clears `armed` (no call can start
//! after that) and waits, with a bound, until the calls in flight have returned: once it
//! returns, nothing reaches 1C after `Done()`, and nothing touches the connection after the
//! platform frees it. If the bound expires (a platform call that never returns), the
//! straggler is inside the platform's own code; we stop waiting rather than hang 1C.
//!
//! The registration is one atomic word (the disarmed bit and the count), not a mutex: the
//! pusher registers every event, and two uncontended lock round trips per event were a
//! measurable part of the push path. The mutex and condvar are touched only by `disarm` and
//! by the last call to leave after it.

use std::cell::RefCell;
use std::ffi::{c_int, c_long, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
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

/// The bit of [`Connection::gate`] set by `disarm`; the bits below it count the calls in
/// the platform.
const DISARMED: usize = 1 << (usize::BITS - 1);

/// The disarmable handle to the platform connection, shared with the push path.
pub struct Connection {
    /// Never dereferenced unless a call was admitted by `gate` (armed at its start).
    ptr: NonNull<RawConnection>,
    /// `DISARMED` | calls in flight.
    gate: AtomicUsize,
    /// Held by `disarm` while it checks the count and by the last call to leave while it
    /// signals `idle`, so that the signal cannot fall between the check and the wait.
    idle_lock: Mutex<()>,
    /// Signalled when the count drops to 0 while disarmed.
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
        self.conn.leave();
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
            gate: AtomicUsize::new(0),
            idle_lock: Mutex::new(()),
            idle: Condvar::new(),
        })
    }

    fn lock_idle(&self) -> MutexGuard<'_, ()> {
        // Guards no data; poisoning carries no meaning here.
        self.idle_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one call, or `None` once disarmed.
    fn admit(&self) -> Option<Admission<'_>> {
        // Acquire pairs with `disarm`'s AcqRel: a call that sees the bit clear was counted
        // before `disarm` read the count, so `disarm` waits for it.
        let before = self.gate.fetch_add(1, Ordering::Acquire);
        if before & DISARMED != 0 {
            self.leave();
            return None;
        }
        Some(Admission { conn: self })
    }

    /// Ends one counted call; the last one to leave after `disarm` wakes it.
    fn leave(&self) {
        let before = self.gate.fetch_sub(1, Ordering::AcqRel);
        if before == DISARMED | 1 {
            let _g = self.lock_idle();
            self.idle.notify_all();
        }
    }

    /// Refuses every later call and waits, at most `wait`, for the calls in flight. True if
    /// none is left in the platform.
    pub fn disarm(&self, wait: Duration) -> bool {
        let g = self.lock_idle();
        self.gate.fetch_or(DISARMED, Ordering::AcqRel);
        let (_g, waited) = self
            .idle
            .wait_timeout_while(g, wait, |_| self.in_flight() > 0)
            .unwrap_or_else(|e| e.into_inner());
        // Not a second read of the count: a call refused meanwhile counts itself for a
        // moment, and would read as a straggler.
        !waited.timed_out()
    }

    /// Calls currently inside the platform (for tests and the log).
    pub fn in_flight(&self) -> usize {
        self.gate.load(Ordering::Acquire) & !DISARMED
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
        // Why a buffer per thread: the three strings of every event used to be three
        // allocations and three frees on the pusher thread. One buffer, reused, holds them
        // end to end. A platform that called back into the add-in on this thread while the
        // buffer is in use would find it borrowed and get a buffer of its own.
        let raise = |w: &mut Vec<u16>| {
            w.clear();
            let (s, e, d) = (
                wstr::push_wide_nul(w, source),
                wstr::push_wide_nul(w, event),
                wstr::push_wide_nul(w, data),
            );
            let base = w.as_mut_ptr();
            let this = self.ptr.as_ptr();
            // SAFETY: admitted while armed, and `disarm` (in `Done()`) waits for the
            // admission to end, so the connection is live for the whole call although no lock
            // is held; the offsets start three NUL-terminated strings inside `w`, which is not
            // touched until the call returns (the platform copies them).
            let ok = unsafe {
                ((*(*this).vtable).external_event)(
                    this.cast(),
                    base.add(s),
                    base.add(e),
                    base.add(d),
                )
            };
            if w.capacity() > WIDE_KEEP {
                // One huge message must not pin its size on the thread for good.
                *w = Vec::new();
            }
            if ok { Emit::Delivered } else { Emit::Refused }
        };
        WIDE.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut w) => raise(&mut w),
            Err(_) => raise(&mut Vec::new()),
        })
        .unwrap_or_else(|_| raise(&mut Vec::new()))
    }
}

/// Capacity (in units) the per-thread event buffer keeps between events.
const WIDE_KEEP: usize = 64 * 1024;

thread_local! {
    /// The push path's UTF-16 buffer: source, event and data of one `ExternalEvent`.
    static WIDE: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    //! The gate against a fake connection object: the platform's side of the contract
    //! (strings whole, nothing after `disarm`, a bounded wait for a call in flight).

    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Barrier};

    #[repr(C)]
    struct Fake {
        vtable: *const AddInDefBaseVTable,
        calls: AtomicUsize,
        /// Set once `disarm` returned true: a call seen after that is a violation.
        disarmed: AtomicBool,
        late: AtomicUsize,
        /// Held by a test to keep a call inside the platform.
        hold: Mutex<()>,
        seen: Mutex<Vec<[String; 3]>>,
    }

    // SAFETY: the only non-thread-safe field is the pointer to an immutable static vtable.
    unsafe impl Send for Fake {}
    // SAFETY: as above; every other field is synchronised.
    unsafe impl Sync for Fake {}

    unsafe extern "system" fn external_event(
        this: *mut c_void,
        source: *mut u16,
        event: *mut u16,
        data: *mut u16,
    ) -> bool {
        // SAFETY: `this` is the `Fake` the test passed to `from_raw`, alive for the test.
        let f = unsafe { &*this.cast::<Fake>() };
        if f.disarmed.load(Ordering::SeqCst) {
            f.late.fetch_add(1, Ordering::SeqCst);
        }
        let _held = f.hold.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the add-in passes three NUL-terminated strings that outlive the call.
        let strings = unsafe {
            [
                wstr::read_nul(source),
                wstr::read_nul(event),
                wstr::read_nul(data),
            ]
        };
        f.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(strings);
        f.calls.fetch_add(1, Ordering::SeqCst);
        true
    }

    unsafe extern "system" fn add_error(
        _: *mut c_void,
        _: u16,
        _: *const u16,
        _: *const u16,
        _: c_long,
    ) -> bool {
        true
    }

    unsafe extern "system" fn set_depth(_: *mut c_void, _: c_long) -> bool {
        true
    }

    unsafe extern "system" fn get_interface(_: *mut c_void, _: c_int) -> *mut c_void {
        std::ptr::null_mut()
    }

    static VTABLE: AddInDefBaseVTable = AddInDefBaseVTable {
        _dtor: 0,
        #[cfg(not(windows))]
        _dtor2: 0,
        add_error,
        _read: 0,
        _write: 0,
        _register_profile_as: 0,
        set_event_buffer_depth: set_depth,
        _get_event_buffer_depth: 0,
        external_event,
        _clean_event_buffer: 0,
        _set_status_line: 0,
        _reset_status_line: 0,
        get_interface,
    };

    fn fake() -> Arc<Fake> {
        Arc::new(Fake {
            vtable: &VTABLE,
            calls: AtomicUsize::new(0),
            disarmed: AtomicBool::new(false),
            late: AtomicUsize::new(0),
            hold: Mutex::new(()),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn connect(f: &Arc<Fake>) -> Arc<Connection> {
        // SAFETY: the fake is a live object whose first field is the vtable pointer, and the
        // test keeps it alive (the `Arc`) longer than the connection is used.
        let c = unsafe { Connection::from_raw(Arc::as_ptr(f).cast_mut().cast()) };
        Arc::new(c.expect("non-null"))
    }

    #[test]
    fn strings_arrive_whole_and_nothing_starts_after_disarm() {
        let f = fake();
        let c = connect(&f);
        let big = "ж".repeat(WIDE_KEEP + 10);
        assert_eq!(
            c.emit("WebSocket", "{\"Event\":1}", "данные 😀"),
            Emit::Delivered
        );
        assert_eq!(c.emit("src", "", &big), Emit::Delivered);
        // The buffer grown by `big` is given back, and the next event is still whole.
        assert_eq!(c.emit("a", "b", "c"), Emit::Delivered);
        let seen = f.seen.lock().unwrap().clone();
        assert_eq!(
            seen[0],
            [
                "WebSocket".to_owned(),
                "{\"Event\":1}".into(),
                "данные 😀".into()
            ]
        );
        assert_eq!(seen[1][2], big);
        assert_eq!(seen[2], ["a".to_owned(), "b".into(), "c".into()]);
        assert!(c.disarm(Duration::from_secs(1)));
        assert_eq!(c.emit("a", "b", "c"), Emit::Closed);
        assert!(!c.add_error("a", "b"));
        assert!(!c.set_event_buffer_depth(5));
        assert_eq!(f.calls.load(Ordering::SeqCst), 3);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn disarm_waits_for_a_call_in_flight_within_its_bound() {
        let f = fake();
        let c = connect(&f);
        let held = f.hold.lock().unwrap();
        let (c2, f2) = (c.clone(), f.clone());
        let caller = std::thread::spawn(move || {
            let _keep = f2;
            c2.emit("s", "e", "d")
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while c.in_flight() == 0 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(c.in_flight(), 1, "the call never entered the platform");
        // Bound expires with the call still inside: reported as a straggler.
        assert!(!c.disarm(Duration::from_millis(50)));
        drop(held);
        assert_eq!(caller.join().unwrap(), Emit::Delivered);
        assert_eq!(c.in_flight(), 0);
        assert!(c.disarm(Duration::ZERO));
    }

    #[test]
    fn emits_racing_disarm_never_reach_the_platform_after_it() {
        for _ in 0..20 {
            let f = fake();
            let c = connect(&f);
            let start = Arc::new(Barrier::new(5));
            let callers: Vec<_> = (0..4)
                .map(|_| {
                    let (c, f, start) = (c.clone(), f.clone(), start.clone());
                    std::thread::spawn(move || {
                        let _keep = f;
                        start.wait();
                        let mut n = 0u32;
                        while c.emit("s", "e", "d") != Emit::Closed {
                            n += 1;
                            assert!(n < 10_000_000, "never saw the disarm");
                        }
                    })
                })
                .collect();
            start.wait();
            while f.calls.load(Ordering::SeqCst) < 100 {
                std::thread::yield_now();
            }
            // Refused admissions racing it count themselves for a moment: still true.
            assert!(c.disarm(Duration::from_secs(5)));
            f.disarmed.store(true, Ordering::SeqCst);
            for t in callers {
                t.join().unwrap();
            }
            assert_eq!(f.late.load(Ordering::SeqCst), 0);
            assert_eq!(c.in_flight(), 0);
        }
    }
}
