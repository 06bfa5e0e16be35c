//! The loaded library ([`Host`]) and the component objects ([`Obj`]).

use std::ffi::{c_long, c_void};
use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libloading::Library;

use crate::conn::Conn;
use crate::ffi::*;
use crate::lock;
use crate::mem::{MemManager, MemState, MemStats};
use crate::var::{Var, decode, encode, from_long, read_wz, release, wz};

/// Calls method `$slot` of the interface at sub-object `$k` (0 IInitDoneBase, 1
/// ILanguageExtenderBase, 2 LocaleBase, 3 UserLanguageBase) of `$obj`, with `this` = the
/// sub-object's address, while marking a host -> add-in call in flight.
macro_rules! vcall {
    ($obj:expr, $k:expr, $Vt:ty, $slot:ident ( $($arg:expr),* )) => {{
        let obj: &Obj = &$obj;
        let (this, vtbl) = obj.sub($k);
        // SAFETY: `vtbl` is the vptr stored in sub-object $k of a live component object; per
        // ABI.md §3.2/§3.4 it points to a vtable with the layout of $Vt that lives at least as
        // long as the object.
        let f = unsafe { (*vtbl.cast::<$Vt>()).$slot };
        let f = f.unwrap_or_else(|| {
            panic!(concat!("add-in vtable slot ", stringify!($Vt), "::", stringify!($slot), " is null"))
        });
        let _in_call = obj.inner.mm.state.enter_call();
        // SAFETY: the add-in's implementation of this method is called with `this` = the address
        // of the sub-object it belongs to, and arguments that satisfy the Native API contract:
        // strings are NUL-terminated and variants initialised, all alive across the call.
        unsafe { f(this $(, $arg)*) }
    }};
}

/// Path of the add-in under test: `$WS1C_ADDIN` if set, else
/// `<workspace root>/target/release/libwebsocket1c.so`.
pub fn default_library_path() -> PathBuf {
    if let Some(p) = std::env::var_os("WS1C_ADDIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // host/ sits directly under the workspace root.
    let root = manifest.parent().unwrap_or(manifest);
    root.join("target")
        .join("release")
        .join("libwebsocket1c.so")
}

/// How the emulated platform creates and serves one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOptions {
    /// Call `setMemManager` before `Init` (OneScript's order) instead of after (1C's documented
    /// order).
    pub mem_first: bool,
    /// `AppType` reported through `IPlatformInfo`: -1 unknown, 0 thin client, 1 thick client,
    /// 2 web client, 3 server (no events are delivered), 4 external connection.
    pub app_type: i32,
    /// Passed to `SetLocale`.
    pub locale: String,
    /// Passed to `SetUserInterfaceLanguageCode` if `Some`.
    pub ui_lang: Option<String>,
    /// `ExternalEvent` always returns false (counted as refused).
    pub refuse_events: bool,
    /// `ExternalEvent` returns false (refused) while the number of pending (not taken) events is
    /// at least the event buffer depth.
    pub honour_buffer_depth: bool,
    /// `ExternalEvent` discards the event, **answering true**, while the number of pending
    /// (not taken) events is at least the event buffer depth: what a platform whose buffer
    /// overflows may do without telling the add-in. Counted in [`crate::Conn::discarded`].
    pub discard_beyond_depth: bool,
    /// `ExternalEvent` takes this long before it returns (a platform whose UI thread is
    /// busy), holding no lock of the host's meanwhile.
    pub event_delay: Option<std::time::Duration>,
}

impl Default for HostOptions {
    /// A thin client, `ru_RU` / `ru`, `Init` before `setMemManager`, events accepted.
    fn default() -> Self {
        HostOptions {
            mem_first: false,
            app_type: app_type::THIN_CLIENT,
            locale: "ru_RU".into(),
            ui_lang: Some("ru".into()),
            refuse_events: false,
            honour_buffer_depth: false,
            discard_beyond_depth: false,
            event_delay: None,
        }
    }
}

impl HostOptions {
    /// Defaults, but playing the 1C server (`AppType` 3: every `ExternalEvent` is refused).
    pub fn server() -> Self {
        HostOptions {
            app_type: app_type::SERVER,
            ..Default::default()
        }
    }

    /// Defaults, but with locale `en_US` and interface language `en`.
    pub fn english() -> Self {
        HostOptions {
            locale: "en_US".into(),
            ui_lang: Some("en".into()),
            ..Default::default()
        }
    }
}

/// Failure to load the library or to create an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// `dlopen` failed.
    Load {
        /// The library path.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// A mandatory export is missing.
    MissingExport {
        /// Export name.
        name: &'static str,
        /// The loader's message.
        message: String,
    },
    /// The platform sequence of `Host::create` failed.
    Create {
        /// Class name passed to `GetClassObject`.
        class: String,
        /// What failed.
        message: String,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Load { path, message } => {
                write!(f, "cannot load add-in {}: {message}", path.display())
            }
            HostError::MissingExport { name, message } => {
                write!(f, "add-in does not export {name}: {message}")
            }
            HostError::Create { class, message } => write!(f, "cannot create {class}: {message}"),
        }
    }
}

impl std::error::Error for HostError {}

/// A failed call as 1C code would see it: the text of the newest `AddError` made during the
/// call (or `"<no AddError>"`), or a host-side error text (method not found, ...) with codes 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    /// Error description.
    pub text: String,
    /// `AddError`'s `wcode` (0 if none).
    pub wcode: u16,
    /// `AddError`'s `scode` (0 if none).
    pub scode: i64,
}

impl CallError {
    fn host(text: String) -> CallError {
        CallError {
            text,
            wcode: 0,
            scode: 0,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for CallError {}

/// The add-in's exported functions, copied out of the library (valid for the process lifetime
/// because the library is never unloaded), or linked into this process ([`Host::in_process`]).
#[derive(Clone, Copy)]
pub struct Exports {
    /// `GetClassNames`.
    pub get_class_names: GetClassNamesFn,
    /// `GetClassObject`.
    pub get_class_object: GetClassObjectFn,
    /// `DestroyObject`.
    pub destroy_object: DestroyObjectFn,
    /// `SetPlatformCapabilities`, if exported.
    pub set_platform_capabilities: Option<SetPlatformCapabilitiesFn>,
    /// `GetAttachType`, if exported.
    pub get_attach_type: Option<GetAttachTypeFn>,
}

/// State of the capabilities negotiation.
#[derive(Clone, Copy, Debug)]
enum Caps {
    /// Not yet: the first `create` announces 3.
    NotCalled,
    /// The host plays an old platform that never calls `SetPlatformCapabilities`.
    Suppressed,
    /// Called with `announced`; `answer` is `None` if the export is missing.
    Called { announced: i32, answer: Option<i32> },
}

/// Shared state of a host; objects keep it alive, so it is dropped after the last object.
struct Inner {
    path: PathBuf,
    /// Never unloaded (see the crate docs); `None` for in-process test exports.
    _lib: Option<ManuallyDrop<Library>>,
    exports: Exports,
    mm: MemManager,
    /// Every connection ever created, kept until the host goes (late calls hit live memory).
    conns: Mutex<Vec<Arc<Conn>>>,
    caps: Mutex<Caps>,
}

/// The emulated platform with one loaded add-in library and one memory manager.
/// `Send + Sync`: objects can be created from several threads.
pub struct Host {
    inner: Arc<Inner>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("path", &self.inner.path)
            .field("mem", &self.mem())
            .finish_non_exhaustive()
    }
}

fn symbol<T: Copy>(lib: &Library, name: &'static str) -> Result<T, libloading::Error> {
    // SAFETY: every call site names an export whose C prototype (ABI.md §4) is exactly the
    // function-pointer type T; the copied pointer stays valid because the library is never
    // unloaded.
    unsafe { lib.get::<T>(name.as_bytes()) }.map(|s| *s)
}

fn mandatory<T: Copy>(lib: &Library, name: &'static str) -> Result<T, HostError> {
    symbol(lib, name).map_err(|e| HostError::MissingExport {
        name,
        message: e.to_string(),
    })
}

impl Host {
    /// Loads the add-in (`dlopen`) and resolves its exports (`SetPlatformCapabilities` and
    /// `GetAttachType` are optional).
    pub fn load(path: &Path) -> Result<Host, HostError> {
        // SAFETY: loading runs the library's initialisers. The library is the add-in under test
        // (a Rust cdylib whose initialisers have no preconditions); it is never unloaded, so its
        // termination routines never run while its code may still be in use.
        let lib = unsafe { Library::new(path) }.map_err(|e| HostError::Load {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let exports = Exports {
            get_class_names: mandatory(&lib, "GetClassNames")?,
            get_class_object: mandatory(&lib, "GetClassObject")?,
            destroy_object: mandatory(&lib, "DestroyObject")?,
            set_platform_capabilities: symbol(&lib, "SetPlatformCapabilities").ok(),
            get_attach_type: symbol(&lib, "GetAttachType").ok(),
        };
        Ok(Host::from_parts(path.to_owned(), Some(lib), exports))
    }

    /// Like [`Host::load`], but playing an old platform that never calls
    /// `SetPlatformCapabilities` (so the add-in must not use `GetInterface`).
    pub fn load_without_capabilities(path: &Path) -> Result<Host, HostError> {
        let host = Host::load(path)?;
        host.set_platform_capabilities(0);
        Ok(host)
    }

    /// Loads [`default_library_path`]; panics with a hint on how to build it if that fails.
    pub fn load_default() -> Host {
        let path = default_library_path();
        if !path.exists() {
            panic!(
                "add-in library not found at {}: build it first with `cargo build --release -p \
                 ws1c-abi --features test-hooks` (or run scripts/test.sh, which does), or set \
                 WS1C_ADDIN to its path",
                path.display()
            );
        }
        Host::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn from_parts(path: PathBuf, lib: Option<Library>, exports: Exports) -> Host {
        Host {
            inner: Arc::new(Inner {
                path,
                _lib: lib.map(ManuallyDrop::new),
                exports,
                mm: MemManager::new(),
                conns: Mutex::new(Vec::new()),
                caps: Mutex::new(Caps::NotCalled),
            }),
        }
    }

    /// A host over the add-in's exports linked into this process rather than loaded from a
    /// file (the fuzz target `variant` links the add-in's code into the fuzzer); everything
    /// else as with [`Host::load`].
    ///
    /// # Safety
    /// Each function implements its Native API export as ABI.md §4 describes (what
    /// [`Host::load`] takes for granted of a library's exports).
    pub unsafe fn in_process(exports: Exports) -> Host {
        Host::from_parts(PathBuf::from("<in-process>"), None, exports)
    }

    /// A host over exports implemented in this process (unit tests).
    #[cfg(test)]
    pub(crate) fn from_exports(exports: Exports) -> Host {
        Host::from_parts(PathBuf::from("<in-process>"), None, exports)
    }

    /// The path the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn st(&self) -> &MemState {
        &self.inner.mm.state
    }

    /// `GetClassNames()`: the `|`-separated class list (a static string; not freed).
    pub fn class_names(&self) -> String {
        let p = {
            let _c = self.st().enter_call();
            // SAFETY: GetClassNames takes no arguments (ABI.md §4).
            unsafe { (self.inner.exports.get_class_names)() }
        };
        if p.is_null() {
            self.st().violation("GetClassNames returned null".into());
            return String::new();
        }
        // SAFETY: GetClassNames returns a static NUL-terminated UTF-16 string (ABI.md §4).
        String::from_utf16_lossy(&unsafe { read_wz(p) })
    }

    /// Calls `SetPlatformCapabilities(caps)` and returns the add-in's answer (-1 if the export
    /// is missing). `caps == 0` means "play a platform that never calls it": nothing is called,
    /// 0 is returned, and later `create` calls will not call it either. Without an explicit call
    /// the first `create` announces 3, as a modern platform does.
    pub fn set_platform_capabilities(&self, caps: i32) -> i32 {
        let mut g = lock(&self.inner.caps);
        if caps == 0 {
            *g = Caps::Suppressed;
            return 0;
        }
        *g = self.call_capabilities(caps);
        match *g {
            Caps::Called {
                answer: Some(a), ..
            } => a,
            _ => -1,
        }
    }

    fn call_capabilities(&self, caps: i32) -> Caps {
        let answer = self.inner.exports.set_platform_capabilities.map(|f| {
            let _c = self.st().enter_call();
            // SAFETY: SetPlatformCapabilities takes an AppCapabilities (int) by value (ABI.md §4).
            unsafe { f(caps) }
        });
        Caps::Called {
            announced: caps,
            answer,
        }
    }

    /// Negotiates capabilities if nobody did yet; true if `GetInterface` may be used.
    fn ensure_capabilities(&self) -> bool {
        let mut g = lock(&self.inner.caps);
        if let Caps::NotCalled = *g {
            *g = self.call_capabilities(3);
        }
        matches!(*g, Caps::Called { announced, answer: Some(a) } if announced >= 1 && a >= 1)
    }

    /// The add-in's answer to the last `SetPlatformCapabilities` call (`None` if never called
    /// or the export is missing).
    pub fn negotiated_capabilities(&self) -> Option<i32> {
        match *lock(&self.inner.caps) {
            Caps::Called { answer, .. } => answer,
            _ => None,
        }
    }

    /// `GetAttachType()` if exported (1 in-process only, 2 isolated only, 3 either).
    pub fn attach_type(&self) -> Option<i32> {
        let f = self.inner.exports.get_attach_type?;
        let _c = self.st().enter_call();
        // SAFETY: GetAttachType takes no arguments (ABI.md §4).
        Some(unsafe { f() })
    }

    /// Creates an object with the platform's sequence (ABI.md §5.2): `GetClassObject`,
    /// `Init`/`setMemManager` (order per `opts.mem_first`), `GetInfo`, `RegisterExtensionAs`,
    /// `SetLocale`, `SetUserInterfaceLanguageCode`. On failure after the object exists it is
    /// `Done` and destroyed before the error is returned.
    pub fn create(&self, class: &str, opts: HostOptions) -> Result<Obj, HostError> {
        let caps_ok = self.ensure_capabilities();
        let err = |message: String| HostError::Create {
            class: class.to_owned(),
            message,
        };
        let conn = Arc::new(Conn::new(class, &opts, caps_ok));
        lock(&self.inner.conns).push(Arc::clone(&conn));
        let st = self.st();
        let name = wz(class);
        let mut ptr: *mut c_void = std::ptr::null_mut();
        st.object_started();
        let rc = {
            let _c = st.enter_call();
            // SAFETY: `name` is a NUL-terminated UTF-16 string alive across the call and `ptr` a
            // writable `IComponentBase*` slot (ABI.md §4).
            unsafe { (self.inner.exports.get_class_object)(name.as_ptr(), &mut ptr) }
        };
        if rc == 0 || ptr.is_null() {
            st.object_done();
            conn.mark_done();
            if !ptr.is_null() {
                conn.violation(format!("GetClassObject returned 0 but stored {ptr:p}"));
            } else if rc != 0 {
                conn.violation(format!("GetClassObject returned {rc} but stored null"));
            }
            return Err(err(format!("GetClassObject returned {rc}")));
        }
        // From here on, dropping `obj` runs Done + DestroyObject.
        let mut obj = Obj {
            inner: Arc::clone(&self.inner),
            ptr,
            conn,
            name: String::new(),
            info: 0,
            done: false,
            destroyed: false,
        };
        let conn_iface = Conn::iface(Arc::as_ptr(&obj.conn));
        let mm_iface = self.inner.mm.as_iface();
        for mem_step in if opts.mem_first {
            [true, false]
        } else {
            [false, true]
        } {
            if mem_step {
                let r = vcall!(obj, 0, InitDoneVtbl, set_mem_manager(mm_iface));
                if !obj.flag(r, "setMemManager") {
                    return Err(err("setMemManager returned false".into()));
                }
            } else {
                let r = vcall!(obj, 0, InitDoneVtbl, init(conn_iface));
                if !obj.flag(r, "Init") {
                    return Err(err("Init returned false".into()));
                }
            }
        }
        obj.info = from_long(vcall!(obj, 0, InitDoneVtbl, get_info()));
        let mut p: *mut u16 = std::ptr::null_mut();
        let r = vcall!(obj, 1, LangVtbl, register_extension_as(&mut p));
        if !obj.flag(r, "RegisterExtensionAs") {
            return Err(err("RegisterExtensionAs returned false".into()));
        }
        obj.name = obj
            .take_name(p, "RegisterExtensionAs")
            .ok_or_else(|| err("RegisterExtensionAs returned true but no name".into()))?;
        obj.set_locale(&opts.locale);
        if let Some(lang) = &opts.ui_lang {
            obj.set_ui_language(lang);
        }
        Ok(obj)
    }

    /// Counters of the host's memory manager.
    pub fn mem(&self) -> MemStats {
        self.st().stats()
    }

    /// Every connection created so far (including those of destroyed objects).
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        lock(&self.inner.conns).clone()
    }

    /// Sum of [`Conn::calls_after_done`] over all connections of this host.
    pub fn calls_after_done(&self) -> u64 {
        self.connections()
            .iter()
            .map(|c| c.calls_after_done())
            .sum()
    }

    /// All protocol violations seen by this host: the memory manager's and every connection's
    /// (prefixed with the class name). Tests normally assert this is empty.
    pub fn violations(&self) -> Vec<String> {
        let mut v = self.st().violations();
        for c in self.connections() {
            v.extend(
                c.violations()
                    .into_iter()
                    .map(|s| format!("{}: {s}", c.class())),
            );
        }
        v
    }
}

/// Sanity bound on `GetNParams` (the host allocates that many variants).
const MAX_PARAMS: i64 = 4096;

/// A component object created by [`Host::create`]. `Send` (it can move to another thread, as
/// the 1C server may use another worker thread for the next call); not `Sync` (the platform
/// never calls one object from two threads at once).
pub struct Obj {
    /// Keeps the library, memory manager and connections alive.
    inner: Arc<Inner>,
    /// The `IComponentBase*` (address of the first vptr); valid until `DestroyObject`.
    ptr: *mut c_void,
    conn: Arc<Conn>,
    name: String,
    info: i64,
    done: bool,
    destroyed: bool,
}

// SAFETY: the component object behind `ptr` has no thread affinity (ABI.md §6.6: the server may
// call successive methods of one object from different threads); `Obj` gives access to it from
// one thread at a time (`&mut`/`&` of a !Sync value), and everything else it holds is Send.
unsafe impl Send for Obj {}

impl fmt::Debug for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Obj")
            .field("name", &self.name)
            .field("class", &self.conn.class())
            .field("ptr", &self.ptr)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Owns the parameter array of one call; frees any buffer left in it when dropped.
struct Slots<'a> {
    st: &'a MemState,
    v: Vec<TVariant>,
}

impl<'a> Slots<'a> {
    /// `n` variants, the first `args.len()` of them encoded from `args`, the rest empty.
    fn new(st: &'a MemState, n: usize, args: &[Var]) -> Slots<'a> {
        let mut v = vec![TVariant::zeroed(); n];
        for (slot, a) in v.iter_mut().zip(args) {
            *slot = encode(st, a);
        }
        Slots { st, v }
    }

    /// The `tVariant*` to pass: null for an empty list (the add-in must not touch it then).
    fn ptr(&mut self) -> *mut TVariant {
        if self.v.is_empty() {
            std::ptr::null_mut()
        } else {
            self.v.as_mut_ptr()
        }
    }
}

impl Drop for Slots<'_> {
    fn drop(&mut self) {
        for t in &mut self.v {
            release(self.st, t);
        }
    }
}

/// Parameters encoded once (strings allocated once through the memory manager) and passed to
/// call after call, so that a benchmark loop measures the add-in and not the emulator's
/// conversions. The ABI still holds: a slot the add-in rewrote (an output parameter) is read
/// back and freed, and the original value is encoded again before the next call.
pub struct Prepared<'a> {
    obj: &'a Obj,
    slots: Slots<'a>,
    /// The variants as handed over, to notice the ones the add-in replaced.
    sent: Vec<TVariant>,
    args: Vec<Var>,
}

impl Prepared<'_> {
    /// Replaces argument `k` (cheap for numbers: no allocation).
    pub fn set(&mut self, k: usize, v: Var) {
        let st = self.obj.st();
        release(st, &mut self.slots.v[k]);
        self.slots.v[k] = encode(st, &v);
        self.sent[k] = self.slots.v[k];
        self.args[k] = v;
    }

    /// Calls method `idx` (as a function if `as_func`) with the prepared arguments. Output
    /// values the add-in wrote are dropped after the ABI checks; the inputs are restored.
    pub fn call(&mut self, idx: i64, as_func: bool) -> Result<Var, CallError> {
        let obj = self.obj;
        let before = obj.conn.error_count();
        let count = self.slots.v.len() as i64;
        let (ok, ret) = obj.dispatch(idx, self.slots.ptr(), count, as_func);
        for k in 0..self.slots.v.len() {
            if !same_variant(&self.slots.v[k], &self.sent[k]) {
                let _ = obj.take_param(&mut self.slots.v[k], k);
                self.slots.v[k] = encode(obj.st(), &self.args[k]);
                self.sent[k] = self.slots.v[k];
            }
        }
        if !ok {
            return Err(obj.call_error(before));
        }
        Ok(if as_func { ret } else { Var::Empty })
    }
}

/// Whether two variants hold the same bits (tag, size and payload words).
fn same_variant(a: &TVariant, b: &TVariant) -> bool {
    // SAFETY: every TVariant the host handles is fully initialised (created by `zeroed`,
    // `encode`, or written by the add-in over one of those), so the word view is readable.
    let (pa, pb) = unsafe { (a.payload.raw, b.payload.raw) };
    a.vt == b.vt && a.cb_elements == b.cb_elements && pa == pb
}

impl Obj {
    /// Sub-object `k`'s address (the `this` for its interface) and its vptr.
    fn sub(&self, k: usize) -> (*mut c_void, *const c_void) {
        let this = self.ptr.cast::<*const c_void>().wrapping_add(k);
        // SAFETY: a live component object starts with four vptrs (ABI.md §3.4), so sub-object
        // `k < 4` is a readable, aligned pointer-sized field.
        let vtbl = unsafe { this.read() };
        (this.cast(), vtbl)
    }

    fn st(&self) -> &MemState {
        &self.inner.mm.state
    }

    /// A C++ `bool` returned by the add-in; values other than 0/1 are reported.
    fn flag(&self, v: u8, what: &str) -> bool {
        if v > 1 {
            self.conn
                .violation(format!("{what} returned bool byte {v}"));
        }
        v != 0
    }

    /// Reads and frees a name allocated by the add-in with `AllocMemory`.
    fn take_name(&self, p: *const u16, what: &str) -> Option<String> {
        if p.is_null() {
            return None;
        }
        let Some(size) = self.st().live_size(p.cast()) else {
            self.conn.violation(format!(
                "{what} returned a string {p:p} not allocated with AllocMemory (not freed)"
            ));
            // SAFETY: the add-in returned this as a NUL-terminated UTF-16 name; not one of our
            // blocks (most likely static data), so it is read up to its terminator and not freed.
            return Some(String::from_utf16_lossy(&unsafe { read_wz(p) }));
        };
        let mut units = Vec::new();
        let mut terminated = false;
        for i in 0..size / 2 {
            // SAFETY: `p` is the start of a live, 8-aligned block of `size` bytes from our
            // manager, so units 0..size/2 are in bounds; reading stops at the first NUL, which a
            // correct add-in wrote (units after it are never read).
            let u = unsafe { p.add(i).read() };
            if u == 0 {
                terminated = true;
                break;
            }
            units.push(u);
        }
        if !terminated {
            self.conn.violation(format!(
                "{what}: name is not NUL-terminated within its allocation"
            ));
        }
        self.st().free(p.cast_mut().cast());
        Some(String::from_utf16_lossy(&units))
    }

    /// Decodes a variant the add-in filled, then frees its buffer and resets it.
    fn take_var(&self, t: &mut TVariant, what: &str) -> Var {
        let v = decode(self.st(), t, &mut |s| {
            self.conn.violation(format!("{what}: {s}"))
        });
        release(self.st(), t);
        v
    }

    /// [`Obj::take_var`] for parameter slot `k`; the label is formatted only for a violation.
    fn take_param(&self, t: &mut TVariant, k: usize) -> Var {
        let v = decode(self.st(), t, &mut |s| {
            self.conn.violation(format!("parameter {k}: {s}"))
        });
        release(self.st(), t);
        v
    }

    fn call_error(&self, errors_before: usize) -> CallError {
        match self.conn.errors_since(errors_before) {
            Some(e) => CallError {
                text: e.descr,
                wcode: e.wcode,
                scode: e.scode,
            },
            None => CallError::host("<no AddError>".into()),
        }
    }

    /// The name the object registered (`RegisterExtensionAs`), e.g. `Client`.
    pub fn extension_name(&self) -> &str {
        &self.name
    }

    /// What `GetInfo()` returned during creation (version × 1000).
    pub fn info(&self) -> i64 {
        self.info
    }

    /// The emulated connection of this object (stays valid after the object is destroyed).
    pub fn conn(&self) -> Arc<Conn> {
        Arc::clone(&self.conn)
    }

    /// True once [`Obj::done`] ran.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// `GetNProps()`.
    pub fn n_props(&self) -> i64 {
        from_long(vcall!(self, 1, LangVtbl, get_n_props()))
    }

    /// `GetNMethods()`.
    pub fn n_methods(&self) -> i64 {
        from_long(vcall!(self, 1, LangVtbl, get_n_methods()))
    }

    /// `GetPropName(idx, alias)` (alias 0 English, 1 local); the returned buffer is freed.
    pub fn prop_name(&self, idx: i64, alias: i64) -> Option<String> {
        let p = vcall!(
            self,
            1,
            LangVtbl,
            get_prop_name(idx as c_long, alias as c_long)
        );
        self.take_name(p, "GetPropName")
    }

    /// `GetMethodName(idx, alias)` (alias 0 English, 1 local); the returned buffer is freed.
    pub fn method_name(&self, idx: i64, alias: i64) -> Option<String> {
        let p = vcall!(
            self,
            1,
            LangVtbl,
            get_method_name(idx as c_long, alias as c_long)
        );
        self.take_name(p, "GetMethodName")
    }

    /// `FindProp(name)`: index or -1.
    pub fn find_prop(&self, name: &str) -> i64 {
        let w = wz(name);
        from_long(vcall!(self, 1, LangVtbl, find_prop(w.as_ptr())))
    }

    /// `FindMethod(name)`: index or -1.
    pub fn find_method(&self, name: &str) -> i64 {
        let w = wz(name);
        from_long(vcall!(self, 1, LangVtbl, find_method(w.as_ptr())))
    }

    /// `IsPropReadable(idx)`.
    pub fn is_readable(&self, idx: i64) -> bool {
        let r = vcall!(self, 1, LangVtbl, is_prop_readable(idx as c_long));
        self.flag(r, "IsPropReadable")
    }

    /// `IsPropWritable(idx)`.
    pub fn is_writable(&self, idx: i64) -> bool {
        let r = vcall!(self, 1, LangVtbl, is_prop_writable(idx as c_long));
        self.flag(r, "IsPropWritable")
    }

    /// `GetNParams(idx)`.
    pub fn n_params(&self, idx: i64) -> i64 {
        from_long(vcall!(self, 1, LangVtbl, get_n_params(idx as c_long)))
    }

    /// `HasRetVal(idx)`.
    pub fn has_ret_val(&self, idx: i64) -> bool {
        let r = vcall!(self, 1, LangVtbl, has_ret_val(idx as c_long));
        self.flag(r, "HasRetVal")
    }

    /// `GetParamDefValue(idx, k)`: the default of parameter `k`, `None` if it returned false
    /// (the parameter is mandatory). Any buffer in the value is freed after reading.
    pub fn param_default(&self, idx: i64, k: i64) -> Option<Var> {
        let mut t = TVariant::zeroed();
        let r = vcall!(
            self,
            1,
            LangVtbl,
            get_param_def_value(idx as c_long, k as c_long, &mut t)
        );
        let ok = self.flag(r, "GetParamDefValue");
        let v = self.take_var(&mut t, "GetParamDefValue");
        ok.then_some(v)
    }

    /// `SetLocale(loc)`.
    pub fn set_locale(&self, loc: &str) {
        let w = wz(loc);
        vcall!(self, 2, LocaleVtbl, set_locale(w.as_ptr()));
    }

    /// `SetUserInterfaceLanguageCode(lang)`.
    pub fn set_ui_language(&self, lang: &str) {
        let w = wz(lang);
        vcall!(
            self,
            3,
            UserLangVtbl,
            set_user_interface_language_code(w.as_ptr())
        );
    }

    /// The full platform sequence for `Obj.Method(args...)` (ABI.md §5.4): `FindMethod`,
    /// `GetNParams`, `GetParamDefValue` for omitted trailing arguments, `HasRetVal`, then
    /// `CallAsFunc` or `CallAsProc`. Every argument is by reference: on success `args[k]` is
    /// replaced by what the add-in left in parameter slot `k`. Returns `Var::Empty` for
    /// procedures.
    pub fn call(&self, method: &str, args: &mut [Var]) -> Result<Var, CallError> {
        self.invoke(method, args, false)
    }

    /// Like [`Obj::call`] but always through `CallAsProc`, even if `HasRetVal` is true.
    pub fn call_proc(&self, method: &str, args: &mut [Var]) -> Result<(), CallError> {
        self.invoke(method, args, true).map(|_| ())
    }

    fn invoke(&self, method: &str, args: &mut [Var], force_proc: bool) -> Result<Var, CallError> {
        let idx = self.find_method(method);
        if idx < 0 {
            return Err(CallError::host(format!("method not found: {method}")));
        }
        let n = self.n_params(idx);
        if !(0..=MAX_PARAMS).contains(&n) {
            self.conn
                .violation(format!("GetNParams({method}) returned {n}"));
            return Err(CallError::host(format!(
                "GetNParams({method}) returned {n}"
            )));
        }
        let n_us = n as usize;
        if args.len() > n_us {
            return Err(CallError::host(format!(
                "too many arguments for {method}: {} given, {n} accepted",
                args.len()
            )));
        }
        let mut slots = Slots::new(self.st(), n_us, args);
        for k in args.len()..n_us {
            let r = vcall!(
                self,
                1,
                LangVtbl,
                get_param_def_value(idx as c_long, k as c_long, &mut slots.v[k])
            );
            if !self.flag(r, "GetParamDefValue") {
                return Err(CallError::host(format!(
                    "missing mandatory argument {k} of {method}"
                )));
            }
        }
        let as_func = self.has_ret_val(idx) && !force_proc;
        self.invoke_slots(idx, &mut slots, args, n, as_func)
    }

    /// Calls `CallAsFunc`/`CallAsProc` with the prepared slots and `count`; reads back and frees
    /// every slot and the return value.
    fn invoke_slots(
        &self,
        idx: i64,
        slots: &mut Slots<'_>,
        args: &mut [Var],
        count: i64,
        as_func: bool,
    ) -> Result<Var, CallError> {
        let before = self.conn.error_count();
        let (ok, ret) = self.dispatch(idx, slots.ptr(), count, as_func);
        let outs: Vec<Var> = slots
            .v
            .iter_mut()
            .enumerate()
            .map(|(k, t)| self.take_param(t, k))
            .collect();
        if !ok {
            return Err(self.call_error(before));
        }
        for (a, o) in args.iter_mut().zip(outs) {
            *a = o;
        }
        Ok(if as_func { ret } else { Var::Empty })
    }

    /// `CallAsFunc` (returning the result read and freed) or `CallAsProc` of method `idx`:
    /// (whether it succeeded, the result).
    fn dispatch(&self, idx: i64, params: *mut TVariant, count: i64, as_func: bool) -> (bool, Var) {
        let mut ret = TVariant::zeroed();
        let (idx, count) = (idx as c_long, count as c_long);
        let r = if as_func {
            vcall!(
                self,
                1,
                LangVtbl,
                call_as_func(idx, &mut ret, params, count)
            )
        } else {
            vcall!(self, 1, LangVtbl, call_as_proc(idx, params, count))
        };
        let ok = self.flag(r, if as_func { "CallAsFunc" } else { "CallAsProc" });
        (ok, self.take_var(&mut ret, "return value"))
    }

    /// Low-level escape hatch: calls method `idx` directly with exactly `params` as the
    /// parameter array (null if empty) and an arbitrary `count` (which may disagree with
    /// `params.len()` to test the add-in's robustness), through `CallAsFunc` if `as_func` else
    /// `CallAsProc`. No `FindMethod`/`GetNParams`/defaults. Read-back as in [`Obj::call`].
    pub fn raw_call_with(
        &self,
        idx: i64,
        params: &mut [Var],
        count: i64,
        as_func: bool,
    ) -> Result<Var, CallError> {
        let mut slots = Slots::new(self.st(), params.len(), params);
        self.invoke_slots(idx, &mut slots, params, count, as_func)
    }

    /// Arguments encoded once for many calls of one method, as a tight 1C loop passes the
    /// same values again and again: see [`Prepared`].
    pub fn prepare(&self, args: &[Var]) -> Prepared<'_> {
        let slots = Slots::new(self.st(), args.len(), args);
        let sent = slots.v.clone();
        Prepared {
            obj: self,
            slots,
            sent,
            args: args.to_vec(),
        }
    }

    /// `x = Obj.Prop`: `FindProp`, `IsPropReadable`, `GetPropVal`.
    pub fn get(&self, prop: &str) -> Result<Var, CallError> {
        let idx = self.find_prop(prop);
        if idx < 0 {
            return Err(CallError::host(format!("property not found: {prop}")));
        }
        if !self.is_readable(idx) {
            return Err(CallError::host(format!("property {prop} is not readable")));
        }
        self.get_prop_raw(idx)
    }

    /// `GetPropVal(idx)` into a zeroed variant, without the checks of [`Obj::get`].
    pub fn get_prop_raw(&self, idx: i64) -> Result<Var, CallError> {
        let before = self.conn.error_count();
        let mut t = TVariant::zeroed();
        let r = vcall!(self, 1, LangVtbl, get_prop_val(idx as c_long, &mut t));
        let ok = self.flag(r, "GetPropVal");
        let v = self.take_var(&mut t, "GetPropVal");
        if ok {
            Ok(v)
        } else {
            Err(self.call_error(before))
        }
    }

    /// `Obj.Prop = v`: `FindProp`, `IsPropWritable`, `SetPropVal`.
    pub fn set(&self, prop: &str, v: Var) -> Result<(), CallError> {
        let idx = self.find_prop(prop);
        if idx < 0 {
            return Err(CallError::host(format!("property not found: {prop}")));
        }
        if !self.is_writable(idx) {
            return Err(CallError::host(format!("property {prop} is not writable")));
        }
        self.set_prop_raw(idx, v)
    }

    /// `SetPropVal(idx, v)` without the checks of [`Obj::set`]; the host-allocated buffer is
    /// freed after the call.
    pub fn set_prop_raw(&self, idx: i64, v: Var) -> Result<(), CallError> {
        let before = self.conn.error_count();
        let mut slots = Slots::new(self.st(), 1, std::slice::from_ref(&v));
        let r = vcall!(
            self,
            1,
            LangVtbl,
            set_prop_val(idx as c_long, &mut slots.v[0])
        );
        let ok = self.flag(r, "SetPropVal");
        drop(slots);
        if ok {
            Ok(())
        } else {
            Err(self.call_error(before))
        }
    }

    /// Calls `Done()` and returns how long it took; from then on every call into the
    /// connection counts in [`Conn::calls_after_done`]. A second call does nothing (returns 0).
    pub fn done(&mut self) -> Duration {
        if self.done {
            return Duration::ZERO;
        }
        self.done = true;
        let t0 = Instant::now();
        vcall!(self, 0, InitDoneVtbl, done());
        let took = t0.elapsed();
        self.conn.mark_done();
        self.st().object_done();
        took
    }

    /// `done()` if not yet, then `DestroyObject(&ptr)`, which must return 0 and null the
    /// pointer (panics otherwise). Dropping an `Obj` does the same.
    pub fn destroy(mut self) {
        self.destroy_impl();
    }

    fn destroy_impl(&mut self) {
        if self.destroyed {
            return;
        }
        self.done();
        self.destroyed = true;
        let mut p = self.ptr;
        let rc = {
            let _c = self.st().enter_call();
            // SAFETY: `p` holds the IComponentBase* that GetClassObject returned and that has not
            // been destroyed yet (`destroyed` was false); DestroyObject takes its address.
            unsafe { (self.inner.exports.destroy_object)(&mut p) }
        };
        if rc != 0 || !p.is_null() {
            let msg = format!(
                "DestroyObject returned {rc} and left the pointer at {p:p} (expected 0 and null)"
            );
            self.conn.violation(msg.clone());
            panic!("{msg}");
        }
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Already unwinding (a failed assertion in a test): still release the object, but a
            // second panic here would abort the test process.
            let _ = catch_unwind(AssertUnwindSafe(|| self.destroy_impl()));
        } else {
            self.destroy_impl();
        }
    }
}
