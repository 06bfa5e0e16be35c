//! The emulated connection (`IAddInDefBaseEx`) plus `IPlatformInfo` and `IAttachedInfo`.
//!
//! One `Conn` per created object. It lives in an `Arc` held by the host (and by the `Obj` and by
//! tests), so it outlives the object: a buggy add-in that calls it after `Done` hits live memory
//! and is counted in [`Conn::calls_after_done`] instead of crashing the test process.

use std::collections::VecDeque;
use std::ffi::{c_int, c_long, c_void};
use std::mem::offset_of;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::ffi::*;
use crate::var::{from_long, read_wz_opt, wz};
use crate::{HostOptions, guard, lock, unexpected_dtor};

/// One `AddError` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRecord {
    /// `wcode` (`ADDIN_E_*`, 1000..=1009 are the documented values).
    pub wcode: u16,
    /// `source`.
    pub source: String,
    /// `descr`.
    pub descr: String,
    /// `scode` (non-zero raises a catchable exception in 1C).
    pub scode: i64,
    /// Thread the call came from.
    pub thread_id: ThreadId,
}

/// One `ExternalEvent` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `source` (1C: `Источник`).
    pub source: String,
    /// `message` (1C: `Событие`).
    pub message: String,
    /// `data` (1C: `Данные`).
    pub data: String,
    /// Thread the call came from.
    pub thread_id: ThreadId,
    /// Name of that thread, if it has one.
    pub thread_name: Option<String>,
    /// 0-based number of this call among all `ExternalEvent` calls on this connection.
    pub seq: u64,
}

/// Method names of the connection's slots, in vtable order (also the keys of
/// [`Conn::call_count`]); the last two are the `IPlatformInfo`/`IAttachedInfo` methods.
const SLOTS: [&str; 13] = [
    "Destructor",
    "AddError",
    "Read",
    "Write",
    "RegisterProfileAs",
    "SetEventBufferDepth",
    "GetEventBufferDepth",
    "ExternalEvent",
    "CleanEventBuffer",
    "SetStatusLine",
    "ResetStatusLine",
    "GetInterface",
    "GetPlatformInfo",
];
const S_ADD_ERROR: usize = 1;
const S_READ: usize = 2;
const S_WRITE: usize = 3;
const S_REGISTER_PROFILE_AS: usize = 4;
const S_SET_DEPTH: usize = 5;
const S_GET_DEPTH: usize = 6;
const S_EXTERNAL_EVENT: usize = 7;
const S_CLEAN: usize = 8;
const S_SET_STATUS: usize = 9;
const S_RESET_STATUS: usize = 10;
const S_GET_INTERFACE: usize = 11;
const S_PLATFORM_INFO: usize = 12;
/// Extra key: `IAttachedInfo::GetAttachedInfo`.
const S_ATTACHED_INFO: usize = 13;

/// Pending events and the counter the condvar waits on.
struct Events {
    pending: VecDeque<Event>,
    calls: u64,
    /// Threads blocked in `wait_until`: a condvar notify is a system call even when nobody
    /// waits, so `ExternalEvent` notifies only when someone does.
    waiters: usize,
}

/// `IPlatformInfo` implementation (no destructor slots). `info` points into `strings`, which are
/// never modified after construction (a `Vec`'s heap buffer does not move with the struct).
#[repr(C)]
struct PlatformInfoObj {
    vtbl: &'static PlatformInfoVtbl,
    info: AppInfo,
    strings: (Vec<u16>, Vec<u16>),
}

// SAFETY: the raw pointers in `info` point into `strings`, owned by the same struct and never
// mutated or reallocated after construction; reading them from any thread is fine.
unsafe impl Send for PlatformInfoObj {}
// SAFETY: as above; the struct is immutable after construction.
unsafe impl Sync for PlatformInfoObj {}

/// `IAttachedInfo` implementation (no destructor slots).
#[repr(C)]
struct AttachedInfoObj {
    vtbl: &'static AttachedInfoVtbl,
}

/// The emulated `IAddInDefBaseEx` of one object. Thread-safe; see the module docs for lifetime.
#[repr(C)]
pub struct Conn {
    vtbl: &'static ConnVtbl,
    platform_info: PlatformInfoObj,
    attached_info: AttachedInfoObj,
    class: String,
    app_type: i32,
    refuse_events: bool,
    honour_buffer_depth: bool,
    discard_beyond_depth: bool,
    event_delay: Option<Duration>,
    discarded: AtomicU64,
    /// `ExternalEvent` calls inside their delay now.
    in_event: AtomicU64,
    /// Whether the host negotiated capabilities (`SetPlatformCapabilities` called and answered
    /// >= 1); without that, `GetInterface` calls are protocol violations (ABI.md §3.3).
    caps_negotiated: bool,
    depth: AtomicI64,
    done: AtomicBool,
    calls_after_done: AtomicU64,
    slot_calls: [AtomicU64; SLOTS.len() + 1],
    refused: AtomicU64,
    errors: Mutex<Vec<ErrorRecord>>,
    events: Mutex<Events>,
    events_cv: Condvar,
    status_line: Mutex<Option<String>>,
    log: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
}

static CONN_VTBL: ConnVtbl = ConnVtbl {
    dtor: [unexpected_dtor; DTOR_SLOTS],
    add_error: c_add_error,
    read: c_read,
    write: c_write,
    register_profile_as: c_register_profile_as,
    set_event_buffer_depth: c_set_event_buffer_depth,
    get_event_buffer_depth: c_get_event_buffer_depth,
    external_event: c_external_event,
    clean_event_buffer: c_clean_event_buffer,
    set_status_line: c_set_status_line,
    reset_status_line: c_reset_status_line,
    get_interface: c_get_interface,
};

static PLATFORM_INFO_VTBL: PlatformInfoVtbl = PlatformInfoVtbl {
    get_platform_info: c_get_platform_info,
};

static ATTACHED_INFO_VTBL: AttachedInfoVtbl = AttachedInfoVtbl {
    get_attached_info: c_get_attached_info,
};

/// The platform version the emulated `IPlatformInfo` reports.
pub const APP_VERSION: &str = "8.3.25.1000";
/// The user agent the emulated `IPlatformInfo` reports.
pub const USER_AGENT: &str = "ws1c-host (emulated 1C:Enterprise platform)";

impl Conn {
    pub(crate) fn new(class: &str, opts: &HostOptions, caps_negotiated: bool) -> Conn {
        let strings = (wz(APP_VERSION), wz(USER_AGENT));
        Conn {
            vtbl: &CONN_VTBL,
            platform_info: PlatformInfoObj {
                vtbl: &PLATFORM_INFO_VTBL,
                info: AppInfo {
                    app_version: strings.0.as_ptr(),
                    user_agent: strings.1.as_ptr(),
                    application: opts.app_type,
                },
                strings,
            },
            attached_info: AttachedInfoObj {
                vtbl: &ATTACHED_INFO_VTBL,
            },
            class: class.to_owned(),
            app_type: opts.app_type,
            refuse_events: opts.refuse_events,
            honour_buffer_depth: opts.honour_buffer_depth,
            discard_beyond_depth: opts.discard_beyond_depth,
            event_delay: opts.event_delay,
            discarded: AtomicU64::new(0),
            in_event: AtomicU64::new(0),
            caps_negotiated,
            depth: AtomicI64::new(1),
            done: AtomicBool::new(false),
            calls_after_done: AtomicU64::new(0),
            slot_calls: Default::default(),
            refused: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            events: Mutex::new(Events {
                pending: VecDeque::new(),
                calls: 0,
                waiters: 0,
            }),
            events_cv: Condvar::new(),
            status_line: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        }
    }

    /// The `IAddInDefBase*` handed to `Init`: the address of this struct (vptr first).
    /// `this` must be the pointer from `Arc::as_ptr`, so that it carries provenance over the
    /// whole `Conn` (the interface pointers derived from it point inside it).
    pub(crate) fn iface(this: *const Conn) -> *mut c_void {
        this.cast_mut().cast()
    }

    pub(crate) fn mark_done(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    pub(crate) fn violation(&self, text: String) {
        push_capped(&mut lock(&self.violations), text);
    }

    /// Common prologue of every slot: counts the call; returns false if the object is done
    /// (the caller then returns its failure value without doing anything else).
    fn enter(&self, slot: usize) -> bool {
        self.slot_calls[slot].fetch_add(1, Ordering::Relaxed);
        if self.done.load(Ordering::SeqCst) {
            self.calls_after_done.fetch_add(1, Ordering::SeqCst);
            self.violation(format!("{} called after Done()", slot_name(slot)));
            false
        } else {
            true
        }
    }

    fn note(&self, text: String) {
        push_capped(&mut lock(&self.log), text);
    }

    /// Reads a NUL-terminated argument string; null is a violation and reads as "".
    ///
    /// # Safety
    /// `p` must be null or a NUL-terminated UTF-16 string readable for the duration of the call.
    unsafe fn arg(&self, p: *const u16, slot: usize, name: &str) -> String {
        // SAFETY: forwarded contract.
        match unsafe { read_wz_opt(p) } {
            Some(s) => s,
            None => {
                self.violation(format!("{}: `{name}` is null", slot_name(slot)));
                String::new()
            }
        }
    }

    // ----- public observation API -------------------------------------------------------------

    /// The class name the object was created with.
    pub fn class(&self) -> &str {
        &self.class
    }

    /// The `AppType` this connection reports through `IPlatformInfo`.
    pub fn app_type(&self) -> i32 {
        self.app_type
    }

    /// Every `AddError` call so far, oldest first.
    pub fn errors(&self) -> Vec<ErrorRecord> {
        lock(&self.errors).clone()
    }

    /// Number of `AddError` calls so far.
    pub fn error_count(&self) -> usize {
        lock(&self.errors).len()
    }

    /// `descr` of the newest `AddError`.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.errors).last().map(|e| e.descr.clone())
    }

    pub(crate) fn errors_since(&self, start: usize) -> Option<ErrorRecord> {
        lock(&self.errors)
            .get(start..)
            .and_then(|s| s.last().cloned())
    }

    /// The events accepted and not yet taken (not drained).
    pub fn events_snapshot(&self) -> Vec<Event> {
        lock(&self.events).pending.iter().cloned().collect()
    }

    /// Drains the accepted events ("delivered to 1C code"), oldest first. This frees room in
    /// the event buffer when `honour_buffer_depth` is set.
    pub fn take_events(&self) -> Vec<Event> {
        lock(&self.events).pending.drain(..).collect()
    }

    /// Waits until at least `n` accepted events are pending (not yet taken); false on timeout.
    pub fn wait_events(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |e| e.pending.len() >= n)
    }

    /// Waits until at least `n` `ExternalEvent` calls (accepted or refused) have arrived in
    /// total; false on timeout.
    pub fn wait_event_calls(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |e| e.calls >= n)
    }

    fn wait_until(&self, timeout: Duration, ready: impl Fn(&Events) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.events);
        loop {
            if ready(&g) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g.waiters += 1;
            g = self
                .events_cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            g.waiters -= 1;
        }
    }

    /// Total `ExternalEvent` calls (accepted, refused, and after `Done`).
    pub fn external_event_calls(&self) -> u64 {
        self.slot_calls[S_EXTERNAL_EVENT].load(Ordering::Relaxed)
    }

    /// `ExternalEvent` calls that returned false (server, `refuse_events`, buffer full).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Events discarded while answering true (`discard_beyond_depth`).
    pub fn discarded(&self) -> u64 {
        self.discarded.load(Ordering::Relaxed)
    }

    /// `ExternalEvent` calls inside their `event_delay` right now.
    pub fn events_in_flight(&self) -> u64 {
        self.in_event.load(Ordering::SeqCst)
    }

    /// The event buffer depth (initially 1; set by `SetEventBufferDepth`).
    pub fn buffer_depth(&self) -> i64 {
        self.depth.load(Ordering::SeqCst)
    }

    /// Calls into this connection (any slot, including `IPlatformInfo`/`IAttachedInfo`) made
    /// after the host called `Done()` on the object and `Done` returned. Must stay 0.
    pub fn calls_after_done(&self) -> u64 {
        self.calls_after_done.load(Ordering::SeqCst)
    }

    /// Number of `GetInterface` calls.
    pub fn get_interface_calls(&self) -> u64 {
        self.slot_calls[S_GET_INTERFACE].load(Ordering::Relaxed)
    }

    /// Number of calls of one method, by its header name: "AddError", "Read", "Write",
    /// "RegisterProfileAs", "SetEventBufferDepth", "GetEventBufferDepth", "ExternalEvent",
    /// "CleanEventBuffer", "SetStatusLine", "ResetStatusLine", "GetInterface",
    /// "GetPlatformInfo", "GetAttachedInfo". Unknown names give 0.
    pub fn call_count(&self, method: &str) -> u64 {
        (0..self.slot_calls.len())
            .find(|&i| slot_name(i) == method)
            .map_or(0, |i| self.slot_calls[i].load(Ordering::Relaxed))
    }

    /// True once the host has called `Done()` and it returned.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Protocol violations detected on this object (by the connection, and by the host while
    /// decoding the object's values), in order. Tests normally assert this is empty.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.violations).clone()
    }

    /// The current status line text (`SetStatusLine`; cleared by `ResetStatusLine`).
    pub fn status_line(&self) -> Option<String> {
        lock(&self.status_line).clone()
    }

    /// A log of the less interesting calls (Read, Write, RegisterProfileAs, status line,
    /// SetEventBufferDepth, CleanEventBuffer, GetInterface), one line each.
    pub fn log(&self) -> Vec<String> {
        lock(&self.log).clone()
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("class", &self.class)
            .field("app_type", &self.app_type)
            .field("done", &self.is_done())
            .field("buffer_depth", &self.buffer_depth())
            .field("external_event_calls", &self.external_event_calls())
            .field("refused", &self.refused())
            .field("errors", &self.error_count())
            .field("calls_after_done", &self.calls_after_done())
            .finish_non_exhaustive()
    }
}

/// Longest the violation list and the call log get: a misbehaving add-in that calls in a loop
/// must not grow the test process without bound (the counters keep counting).
pub(crate) const MAX_RECORDS: usize = 1000;

/// Appends to a capped record list; the entry at the cap says that more were dropped.
pub(crate) fn push_capped(v: &mut Vec<String>, text: String) {
    match v.len() {
        n if n < MAX_RECORDS => v.push(text),
        MAX_RECORDS => v.push("... (further records dropped)".into()),
        _ => {}
    }
}

fn slot_name(slot: usize) -> &'static str {
    if slot == S_ATTACHED_INFO {
        "GetAttachedInfo"
    } else {
        SLOTS.get(slot).copied().unwrap_or("?")
    }
}

/// Recovers the connection from the `this` the add-in passes.
///
/// # Safety
/// `this` must be null or the `IAddInDefBase*` given to the add-in, and the host must be alive.
unsafe fn conn<'a>(this: *mut c_void) -> Option<&'a Conn> {
    // SAFETY: per the contract `this` is null or points to a live Conn (kept alive by the
    // host's list); only shared references are created and all mutable state is behind
    // atomics/mutexes.
    unsafe { this.cast::<Conn>().cast_const().as_ref() }
}

/// Runs a slot body: recovers the connection, counts the call, returns `dead` if `this` is null,
/// the object is done, or the body panics.
fn slot<R>(this: *mut c_void, slot: usize, dead: R, body: impl FnOnce(&Conn) -> R) -> R
where
    R: Copy,
{
    guard(dead, || {
        // SAFETY: `this` comes from the add-in calling through the vtable we gave it (the
        // IAddInDefBase* handed to Init); the Conn is kept alive by the host.
        let Some(c) = (unsafe { conn(this) }) else {
            return dead;
        };
        if !c.enter(slot) {
            return dead;
        }
        body(c)
    })
}

unsafe extern "system" fn c_add_error(
    this: *mut c_void,
    wcode: u16,
    source: *const u16,
    descr: *const u16,
    scode: c_long,
) -> bool {
    slot(this, S_ADD_ERROR, false, |c| {
        // SAFETY: AddError's strings are NUL-terminated UTF-16 owned by the add-in for the
        // duration of the call (ABI.md §6.1).
        let source = unsafe { c.arg(source, S_ADD_ERROR, "source") };
        // SAFETY: as above.
        let descr = unsafe { c.arg(descr, S_ADD_ERROR, "descr") };
        lock(&c.errors).push(ErrorRecord {
            wcode,
            source,
            descr,
            scode: from_long(scode),
            thread_id: std::thread::current().id(),
        });
        true
    })
}

unsafe extern "system" fn c_read(
    this: *mut c_void,
    name: *mut u16,
    _val: *mut TVariant,
    _err_code: *mut c_long,
    _err_text: *mut *mut u16,
) -> bool {
    slot(this, S_READ, false, |c| {
        // SAFETY: `name` is a NUL-terminated UTF-16 string owned by the add-in for the call.
        let name = unsafe { c.arg(name, S_READ, "name") };
        c.note(format!("Read {name}"));
        false // no profile storage in the emulated platform
    })
}

unsafe extern "system" fn c_write(this: *mut c_void, name: *mut u16, val: *mut TVariant) -> bool {
    slot(this, S_WRITE, false, |c| {
        // SAFETY: `name` is a NUL-terminated UTF-16 string owned by the add-in for the call.
        let name = unsafe { c.arg(name, S_WRITE, "name") };
        // SAFETY: `val` is null or points to the add-in's initialised tVariant; only the tag is
        // read (a u16 at a fixed offset; any value is valid).
        let vt = unsafe { val.as_ref() }.map(|v| v.vt);
        c.note(format!("Write {name} vt={vt:?}"));
        c.app_type != app_type::SERVER
    })
}

unsafe extern "system" fn c_register_profile_as(this: *mut c_void, profile: *mut u16) -> bool {
    slot(this, S_REGISTER_PROFILE_AS, false, |c| {
        // SAFETY: `profile` is a NUL-terminated UTF-16 string owned by the add-in for the call.
        let p = unsafe { c.arg(profile, S_REGISTER_PROFILE_AS, "profile") };
        c.note(format!("RegisterProfileAs {p}"));
        true
    })
}

unsafe extern "system" fn c_set_event_buffer_depth(this: *mut c_void, depth: c_long) -> bool {
    slot(this, S_SET_DEPTH, false, |c| {
        c.depth.store(from_long(depth), Ordering::SeqCst);
        c.note(format!("SetEventBufferDepth {depth}"));
        true
    })
}

unsafe extern "system" fn c_get_event_buffer_depth(this: *mut c_void) -> c_long {
    slot(this, S_GET_DEPTH, 0, |c| {
        c_long::try_from(c.depth.load(Ordering::SeqCst)).unwrap_or(c_long::MAX)
    })
}

unsafe extern "system" fn c_external_event(
    this: *mut c_void,
    source: *mut u16,
    message: *mut u16,
    data: *mut u16,
) -> bool {
    guard(false, || {
        // SAFETY: `this` is the IAddInDefBase* handed to Init (see `slot`).
        let Some(c) = (unsafe { conn(this) }) else {
            return false;
        };
        if !c.enter(S_EXTERNAL_EVENT) {
            // After Done: refused without reading anything, but still counted and waiters woken
            // so a test can await the straggler.
            lock(&c.events).calls += 1;
            c.events_cv.notify_all();
            return false;
        }
        // SAFETY: ExternalEvent's strings are NUL-terminated UTF-16 owned by the add-in for the
        // duration of the call; the platform copies them (ABI.md §6.5).
        let source = unsafe { c.arg(source, S_EXTERNAL_EVENT, "source") };
        // SAFETY: as above.
        let message = unsafe { c.arg(message, S_EXTERNAL_EVENT, "message") };
        // SAFETY: as above.
        let data = unsafe { c.arg(data, S_EXTERNAL_EVENT, "data") };
        if let Some(d) = c.event_delay {
            // A busy platform: no lock of ours is held, so AddError and the other objects'
            // calls go on meanwhile.
            c.in_event.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(d);
            c.in_event.fetch_sub(1, Ordering::SeqCst);
        }
        let thread = std::thread::current();
        let mut ev = lock(&c.events);
        let seq = ev.calls;
        ev.calls += 1;
        let beyond =
            i64::try_from(ev.pending.len()).unwrap_or(i64::MAX) >= c.depth.load(Ordering::SeqCst);
        if c.discard_beyond_depth && beyond && c.app_type != app_type::SERVER {
            c.discarded.fetch_add(1, Ordering::Relaxed);
            let waiters = ev.waiters;
            drop(ev);
            if waiters > 0 {
                c.events_cv.notify_all();
            }
            return true;
        }
        let full = c.honour_buffer_depth && beyond;
        let accept = !(c.app_type == app_type::SERVER || c.refuse_events || full);
        if accept {
            ev.pending.push_back(Event {
                source,
                message,
                data,
                thread_id: thread.id(),
                thread_name: thread.name().map(str::to_owned),
                seq,
            });
        } else {
            c.refused.fetch_add(1, Ordering::Relaxed);
        }
        let waiters = ev.waiters;
        drop(ev);
        if waiters > 0 {
            c.events_cv.notify_all();
        }
        accept
    })
}

unsafe extern "system" fn c_clean_event_buffer(this: *mut c_void) {
    slot(this, S_CLEAN, (), |c| {
        let n = {
            let mut ev = lock(&c.events);
            let n = ev.pending.len();
            ev.pending.clear();
            n
        };
        c.note(format!("CleanEventBuffer ({n} pending dropped)"));
    })
}

unsafe extern "system" fn c_set_status_line(this: *mut c_void, text: *mut u16) -> bool {
    slot(this, S_SET_STATUS, false, |c| {
        // SAFETY: `text` is a NUL-terminated UTF-16 string owned by the add-in for the call.
        let t = unsafe { c.arg(text, S_SET_STATUS, "text") };
        c.note(format!("SetStatusLine {t}"));
        *lock(&c.status_line) = Some(t);
        c.app_type != app_type::SERVER
    })
}

unsafe extern "system" fn c_reset_status_line(this: *mut c_void) {
    slot(this, S_RESET_STATUS, (), |c| {
        c.note("ResetStatusLine".into());
        *lock(&c.status_line) = None;
    })
}

unsafe extern "system" fn c_get_interface(this: *mut c_void, which: c_int) -> *mut c_void {
    slot(this, S_GET_INTERFACE, std::ptr::null_mut(), |c| {
        c.note(format!("GetInterface {which}"));
        if !c.caps_negotiated {
            c.violation(format!(
                "GetInterface({which}) called although platform capabilities were not negotiated"
            ));
        }
        let offset = match which {
            iface::PLATFORM_INFO => offset_of!(Conn, platform_info),
            iface::ATTACHED_INFO => offset_of!(Conn, attached_info),
            _ => return std::ptr::null_mut(), // eIMsgBox: not emulated; others: unknown
        };
        // Derived from `this` (whole-Conn provenance) so the callbacks can get back to the Conn.
        this.cast::<u8>().wrapping_add(offset).cast()
    })
}

unsafe extern "system" fn c_get_platform_info(this: *mut c_void) -> *const AppInfo {
    let conn_ptr = this
        .cast::<u8>()
        .wrapping_sub(offset_of!(Conn, platform_info))
        .cast::<c_void>();
    let this_is_null = this.is_null();
    slot(
        if this_is_null { this } else { conn_ptr },
        S_PLATFORM_INFO,
        std::ptr::null(),
        |c| &c.platform_info.info as *const AppInfo,
    )
}

unsafe extern "system" fn c_get_attached_info(this: *mut c_void) -> c_int {
    let conn_ptr = this
        .cast::<u8>()
        .wrapping_sub(offset_of!(Conn, attached_info))
        .cast::<c_void>();
    let this_is_null = this.is_null();
    slot(
        if this_is_null { this } else { conn_ptr },
        S_ATTACHED_INFO,
        1, // eAttachedNotIsolated: the host loads the library in-process
        |_| 1,
    )
}
