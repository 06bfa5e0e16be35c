//! The component object 1C holds: four vptrs (IInitDoneBase, ILanguageExtenderBase,
//! LocaleBase, UserLanguageBase) followed by our state, and the static vtables whose
//! entries ("thunks") recover the object from the sub-object pointer the platform passes.
//!
//! The platform calls each interface through its own sub-object: `IComponentBase*` + 0, +8,
//! +16, +24 on 64-bit targets (ABI.md §3.4). A thunk subtracts its field's offset to get
//! back to the `Component`. Every thunk runs its body under the panic guard; a panic
//! becomes `AddError` + the entry's failure value, and the object stays usable.

use std::ffi::{c_long, c_void};
use std::mem::offset_of;
use std::sync::Arc;
use std::time::Instant;

use ws1c::platform::PlatformContext;
use ws1c::value::ParamType;
use ws1c::{AddIn, Args, Error, Value};

use crate::guard::catch;
use crate::memory::MemoryManager;
use crate::platform::Connection;
use crate::types::TVariant;
use crate::variant::{self, NoMemory};
use crate::wstr;

/// `IInitDoneBase::GetInfo`: version × 1000 of the Native API we implement.
const INFO_VERSION: c_long = 2000;

type This = *mut c_void;

/// A destructor slot. The platform never calls it (it calls `DestroyObject`, ABI.md §3.5);
/// a no-op is safer than null should a host ever do so.
type Dtor = unsafe extern "system" fn(This);

unsafe extern "system" fn no_dtor(_this: This) {}

#[repr(C)]
pub struct InitDoneVTable {
    dtor: Dtor,
    #[cfg(not(windows))]
    dtor2: Dtor,
    init: unsafe extern "system" fn(This, *mut c_void) -> bool,
    set_mem_manager: unsafe extern "system" fn(This, *mut c_void) -> bool,
    get_info: unsafe extern "system" fn(This) -> c_long,
    done: unsafe extern "system" fn(This),
}

#[repr(C)]
pub struct LangExtenderVTable {
    dtor: Dtor,
    #[cfg(not(windows))]
    dtor2: Dtor,
    register_extension_as: unsafe extern "system" fn(This, *mut *mut u16) -> bool,
    get_n_props: unsafe extern "system" fn(This) -> c_long,
    find_prop: unsafe extern "system" fn(This, *const u16) -> c_long,
    get_prop_name: unsafe extern "system" fn(This, c_long, c_long) -> *const u16,
    get_prop_val: unsafe extern "system" fn(This, c_long, *mut TVariant) -> bool,
    set_prop_val: unsafe extern "system" fn(This, c_long, *mut TVariant) -> bool,
    is_prop_readable: unsafe extern "system" fn(This, c_long) -> bool,
    is_prop_writable: unsafe extern "system" fn(This, c_long) -> bool,
    get_n_methods: unsafe extern "system" fn(This) -> c_long,
    find_method: unsafe extern "system" fn(This, *const u16) -> c_long,
    get_method_name: unsafe extern "system" fn(This, c_long, c_long) -> *const u16,
    get_n_params: unsafe extern "system" fn(This, c_long) -> c_long,
    get_param_def_value: unsafe extern "system" fn(This, c_long, c_long, *mut TVariant) -> bool,
    has_ret_val: unsafe extern "system" fn(This, c_long) -> bool,
    call_as_proc: unsafe extern "system" fn(This, c_long, *mut TVariant, c_long) -> bool,
    call_as_func:
        unsafe extern "system" fn(This, c_long, *mut TVariant, *mut TVariant, c_long) -> bool,
}

#[repr(C)]
pub struct LocaleVTable {
    dtor: Dtor,
    #[cfg(not(windows))]
    dtor2: Dtor,
    set_locale: unsafe extern "system" fn(This, *const u16),
}

#[repr(C)]
pub struct UserLanguageVTable {
    dtor: Dtor,
    #[cfg(not(windows))]
    dtor2: Dtor,
    set_user_interface_language_code: unsafe extern "system" fn(This, *const u16),
}

const WORD: usize = size_of::<usize>();
#[cfg(not(windows))]
const DTOR_SLOTS: usize = 2;
#[cfg(windows)]
const DTOR_SLOTS: usize = 1;

// Slot positions, as g++ (Itanium: two destructor slots) or MSVC (one) lays them out.
const _: () = {
    assert!(offset_of!(InitDoneVTable, init) == DTOR_SLOTS * WORD);
    assert!(offset_of!(InitDoneVTable, done) == (DTOR_SLOTS + 3) * WORD);
    assert!(offset_of!(LangExtenderVTable, register_extension_as) == DTOR_SLOTS * WORD);
    assert!(offset_of!(LangExtenderVTable, call_as_func) == (DTOR_SLOTS + 15) * WORD);
    assert!(offset_of!(LocaleVTable, set_locale) == DTOR_SLOTS * WORD);
    assert!(offset_of!(UserLanguageVTable, set_user_interface_language_code) == DTOR_SLOTS * WORD);
    assert!(offset_of!(Component, lang_ext) == WORD);
    assert!(offset_of!(Component, locale) == 2 * WORD);
    assert!(offset_of!(Component, user_lang) == 3 * WORD);
};

/// The object behind the `IComponentBase*` given to 1C.
#[repr(C)]
pub struct Component {
    init_done: &'static InitDoneVTable,
    lang_ext: &'static LangExtenderVTable,
    locale: &'static LocaleVTable,
    user_lang: &'static UserLanguageVTable,
    state: State,
}

/// Everything behind the vptrs.
struct State {
    addin: AddIn,
    /// `Источник` of AddError messages: `WebSocket.Client` / `WebSocket.Server`.
    source: String,
    /// From `Init`; shared with the push path, disarmed by `Done()`.
    conn: Option<Arc<Connection>>,
    /// From `setMemManager`; dropped by `Done()`.
    mem: Option<MemoryManager>,
    done: bool,
    /// The last call's argument buffers, kept for the next call.
    args: Args,
}

impl Component {
    /// A new object for class `name`, or `None` for an unknown class.
    pub fn new(name: &str) -> Option<Box<Component>> {
        let addin = AddIn::create(name)?;
        let source = format!("WebSocket.{}", addin.members().class);
        Some(Box::new(Component {
            init_done: &INIT_DONE,
            lang_ext: &LANG_EXT,
            locale: &LOCALE,
            user_lang: &USER_LANG,
            state: State {
                addin,
                source,
                conn: None,
                mem: None,
                done: false,
                args: Args::default(),
            },
        }))
    }
}

impl State {
    /// Records `e` for `ОписаниеОшибки()` and raises it in 1C through `AddError`.
    fn report(&mut self, e: &Error) {
        let text = self.addin.fail(e);
        self.raise(&text);
    }

    fn raise(&self, text: &str) {
        if let Some(c) = &self.conn {
            c.add_error(&self.source, text);
        }
    }

    /// Turns a core result into the entry's return, raising failures.
    fn check<T>(&self, r: Result<T, String>) -> Option<T> {
        r.map_err(|text| self.raise(&text)).ok()
    }

    fn mem(&mut self) -> Option<&MemoryManager> {
        if self.mem.is_none() {
            self.report(&Error::Platform {
                ru: "Платформа не передала менеджер памяти (setMemManager) или объект уже завершён",
                en: "The platform has not set the memory manager (setMemManager) or the object is done",
            });
        }
        self.mem.as_ref()
    }

    fn no_memory(&mut self) -> bool {
        self.report(&Error::Platform {
            ru: "Платформа не выделила память для результата",
            en: "The platform could not allocate memory for the result",
        });
        false
    }

    /// `Done()`: disarm the platform handle first, so no event reaches 1C from here on
    /// (waiting for a push in flight), then stop the object, then forget the memory
    /// manager; all within `ТаймаутЗавершения`. Idempotent.
    fn shutdown(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let wait = self.addin.shutdown_timeout();
        let deadline = Instant::now() + wait;
        if let Some(c) = &self.conn {
            c.disarm(wait);
        }
        self.addin.done(deadline);
        self.mem = None;
    }
}

impl Drop for State {
    /// `DestroyObject` without `Done()` (a host that skips it) still stops everything.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs `body` on the component whose sub-object at `offset` is `this`; a panic is
/// reported through `AddError` and gives `failure`.
///
/// # Safety
/// `this` is null or the address of the field at `offset` of a live `Component` that no
/// other reference is using (the platform calls an object from one thread at a time).
unsafe fn with<R>(this: This, offset: usize, failure: R, body: impl FnOnce(&mut State) -> R) -> R {
    if this.is_null() {
        return failure;
    }
    // SAFETY: per the contract, `this - offset` is the start of a live Component.
    let comp = unsafe { this.byte_sub(offset).cast::<Component>() };
    // SAFETY: exclusive access per the contract; the borrow ends with the closure.
    match catch(|| body(unsafe { &mut (*comp).state })) {
        Ok(r) => r,
        Err(msg) => {
            // SAFETY: the first borrow ended with the unwind; this one is again exclusive.
            let state = unsafe { &mut (*comp).state };
            let _ = catch(|| state.report(&Error::Panic(msg)));
            failure
        }
    }
}

const INIT: usize = offset_of!(Component, init_done);
const LANG: usize = offset_of!(Component, lang_ext);
const LOC: usize = offset_of!(Component, locale);
const ULANG: usize = offset_of!(Component, user_lang);

/// A platform index, or `usize::MAX` (never a member) for a negative one.
fn index(i: c_long) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

fn count(n: usize) -> c_long {
    c_long::try_from(n).unwrap_or(c_long::MAX)
}

// ---- IInitDoneBase ------------------------------------------------------------------------
//
// Each thunk below: the platform passes, as `this`, the address of the sub-object whose
// vtable it called through, inside a live Component (GetClassObject made it; DestroyObject
// has not run yet). That is `with`'s contract; the SAFETY lines name only what is added.

unsafe extern "system" fn init(this: This, connection: *mut c_void) -> bool {
    let body = |s: &mut State| {
        // SAFETY: the platform's connection object lives until `Done()`, which disarms it.
        let Some(conn) = (unsafe { Connection::from_raw(connection) }) else {
            return false;
        };
        if let Some(old) = s.conn.take() {
            old.disarm(s.addin.shutdown_timeout());
        }
        let conn = Arc::new(conn);
        // `attach` asks the platform for an event buffer as deep as `РазмерОчереди`.
        let app = conn.app_type();
        s.conn = Some(conn.clone());
        s.addin.attach(PlatformContext { app, sink: conn });
        true
    };
    // SAFETY: `this` is the IInitDoneBase sub-object (see above).
    unsafe { with(this, INIT, false, body) }
}

unsafe extern "system" fn set_mem_manager(this: This, mm: *mut c_void) -> bool {
    let body = |s: &mut State| {
        // SAFETY: the platform's memory manager outlives the object; we drop the handle at
        // `Done()`.
        s.mem = unsafe { MemoryManager::from_raw(mm) };
        s.mem.is_some()
    };
    // SAFETY: `this` is the IInitDoneBase sub-object.
    unsafe { with(this, INIT, false, body) }
}

unsafe extern "system" fn get_info(_this: This) -> c_long {
    INFO_VERSION
}

unsafe extern "system" fn done(this: This) {
    // SAFETY: `this` is the IInitDoneBase sub-object.
    unsafe { with(this, INIT, (), State::shutdown) }
}

// ---- ILanguageExtenderBase ----------------------------------------------------------------

unsafe extern "system" fn register_extension_as(this: This, name: *mut *mut u16) -> bool {
    let body = |s: &mut State| {
        if name.is_null() {
            return false;
        }
        let class = s.addin.members().class;
        let Some((p, _)) = s.mem().and_then(|m| m.alloc_wstr(class)) else {
            return false;
        };
        // SAFETY: `name` is the platform's out pointer, checked non-null.
        unsafe { *name = p.as_ptr() };
        true
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

unsafe extern "system" fn get_n_props(this: This) -> c_long {
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, 0, |s| count(s.addin.members().props.len())) }
}

unsafe extern "system" fn find_prop(this: This, name: *const u16) -> c_long {
    // SAFETY: the platform passes a NUL-terminated name.
    let name = unsafe { wstr::read_nul(name) };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe {
        with(this, LANG, -1, |s| {
            s.addin.members().find_prop(&name).map_or(-1, count)
        })
    }
}

/// A member name in platform memory: alias 0 is English, anything else Russian.
fn alloc_name(s: &mut State, names: Option<ws1c::error::Names>, alias: c_long) -> *const u16 {
    let Some(names) = names else {
        return std::ptr::null();
    };
    let name = if alias == 0 { names.en } else { names.ru };
    s.mem()
        .and_then(|m| m.alloc_wstr(name))
        .map_or(std::ptr::null(), |(p, _)| p.as_ptr())
}

unsafe extern "system" fn get_prop_name(this: This, idx: c_long, alias: c_long) -> *const u16 {
    let body = |s: &mut State| {
        let names = s.addin.members().props.get(index(idx)).map(|p| p.names);
        alloc_name(s, names, alias)
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, std::ptr::null(), body) }
}

/// Writes a result into the platform's zeroed variant `out`.
///
/// # Safety
/// `out` is null or a writable platform variant.
unsafe fn put_result(s: &mut State, out: *mut TVariant, v: &Value) -> bool {
    if out.is_null() {
        return false;
    }
    let Some(mem) = s.mem() else { return false };
    // SAFETY: `out` is writable per the contract and non-null.
    match unsafe { variant::write_fresh(mem, out, v) } {
        Ok(()) => true,
        Err(NoMemory) => s.no_memory(),
    }
}

unsafe extern "system" fn get_prop_val(this: This, idx: c_long, out: *mut TVariant) -> bool {
    let body = |s: &mut State| {
        let r = s.addin.get_prop(index(idx));
        let Some(v) = s.check(r) else { return false };
        // SAFETY: `out` is the platform's result variant.
        unsafe { put_result(s, out, &v) }
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

unsafe extern "system" fn set_prop_val(this: This, idx: c_long, val: *mut TVariant) -> bool {
    let body = |s: &mut State| {
        let v = if val.is_null() {
            Value::Empty
        } else {
            // SAFETY: a readable platform variant whose payload matches its tag (we copy it).
            unsafe { variant::read(val) }
        };
        let r = s.addin.set_prop(index(idx), v);
        s.check(r).is_some()
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

unsafe extern "system" fn is_prop_readable(this: This, idx: c_long) -> bool {
    let body = |s: &mut State| {
        s.addin
            .members()
            .props
            .get(index(idx))
            .is_some_and(|p| p.readable)
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

unsafe extern "system" fn is_prop_writable(this: This, idx: c_long) -> bool {
    let body = |s: &mut State| {
        s.addin
            .members()
            .props
            .get(index(idx))
            .is_some_and(|p| p.writable.is_some())
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

unsafe extern "system" fn get_n_methods(this: This) -> c_long {
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, 0, |s| count(s.addin.members().methods.len())) }
}

unsafe extern "system" fn find_method(this: This, name: *const u16) -> c_long {
    // SAFETY: the platform passes a NUL-terminated name.
    let name = unsafe { wstr::read_nul(name) };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe {
        with(this, LANG, -1, |s| {
            s.addin.members().find_method(&name).map_or(-1, count)
        })
    }
}

unsafe extern "system" fn get_method_name(this: This, idx: c_long, alias: c_long) -> *const u16 {
    let body = |s: &mut State| {
        let names = s.addin.members().methods.get(index(idx)).map(|m| m.names);
        alloc_name(s, names, alias)
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, std::ptr::null(), body) }
}

unsafe extern "system" fn get_n_params(this: This, idx: c_long) -> c_long {
    let body = |s: &mut State| {
        s.addin
            .members()
            .methods
            .get(index(idx))
            .map_or(0, |m| count(m.params.len()))
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, 0, body) }
}

unsafe extern "system" fn get_param_def_value(
    this: This,
    m: c_long,
    k: c_long,
    out: *mut TVariant,
) -> bool {
    let body = |s: &mut State| {
        let Some(v) = s.addin.param_default(index(m), index(k)) else {
            return false;
        };
        // SAFETY: `out` is the platform's result variant.
        unsafe { put_result(s, out, &v) }
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

unsafe extern "system" fn has_ret_val(this: This, idx: c_long) -> bool {
    let body = |s: &mut State| {
        s.addin
            .members()
            .methods
            .get(index(idx))
            .is_some_and(|m| m.returns)
    };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

/// The body of both call entries: read the arguments, call, write back the by-reference
/// results and, for `CallAsFunc`, the return value.
///
/// # Safety
/// `params` is null with `n == 0`, or points to `n` platform variants; `ret` is null or a
/// writable platform variant.
unsafe fn call(
    s: &mut State,
    idx: c_long,
    ret: *mut TVariant,
    params: *mut TVariant,
    n: c_long,
) -> bool {
    let n = match usize::try_from(n) {
        Ok(n) if n == 0 || !params.is_null() => n,
        _ => {
            s.report(&Error::Platform {
                ru: "Платформа передала неверный массив параметров",
                en: "The platform passed an invalid parameter array",
            });
            return false;
        }
    };
    // A by-reference parameter the method only writes (`Данные` of `Получить`) usually
    // still holds the previous result: reading it would decode a string for nothing.
    let decl = s
        .addin
        .members()
        .methods
        .get(index(idx))
        .map_or(&[][..], |m| m.params);
    // The previous call's buffers, reused (put back below on the usual path).
    let mut args = std::mem::take(&mut s.args);
    args.clear();
    for k in 0..n {
        args.push(if decl.get(k).is_some_and(|p| p.ty == ParamType::Out) {
            Value::Empty
        } else {
            // SAFETY: `n` readable variants at `params` per the contract.
            unsafe { variant::read(params.add(k)) }
        });
    }
    let r = s.addin.call(index(idx), &mut args);
    let Some(result) = s.check(r) else {
        return false;
    };
    let mut ok = true;
    let mut outs = args.drain_outs().peekable();
    if outs.peek().is_some() || !ret.is_null() {
        let Some(mem) = s.mem.as_ref() else {
            drop(outs);
            s.mem();
            return false;
        };
        for (k, v) in outs {
            if k < n {
                // SAFETY: slot `k` of the platform's array, whose current tag we honour.
                ok &= unsafe { variant::write_out(mem, params.add(k), &v) }.is_ok();
            }
        }
        if !ret.is_null() {
            // SAFETY: the platform's zeroed result variant.
            ok &= unsafe { variant::write_fresh(mem, ret, &result) }.is_ok();
        }
    } else {
        drop(outs);
    }
    // Values are dropped now (a large message must not wait for the next call).
    args.clear();
    s.args = args;
    ok || s.no_memory()
}

unsafe extern "system" fn call_as_proc(
    this: This,
    idx: c_long,
    params: *mut TVariant,
    n: c_long,
) -> bool {
    // SAFETY: the platform's parameter array follows `call`'s contract.
    let body = |s: &mut State| unsafe { call(s, idx, std::ptr::null_mut(), params, n) };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

unsafe extern "system" fn call_as_func(
    this: This,
    idx: c_long,
    ret: *mut TVariant,
    params: *mut TVariant,
    n: c_long,
) -> bool {
    // SAFETY: the platform's result and parameter array follow `call`'s contract.
    let body = |s: &mut State| unsafe { call(s, idx, ret, params, n) };
    // SAFETY: `this` is the ILanguageExtenderBase sub-object.
    unsafe { with(this, LANG, false, body) }
}

// ---- LocaleBase, UserLanguageBase -----------------------------------------------------

unsafe extern "system" fn set_locale(this: This, loc: *const u16) {
    // SAFETY: the platform passes a NUL-terminated locale.
    let loc = unsafe { wstr::read_nul(loc) };
    // SAFETY: `this` is the LocaleBase sub-object.
    unsafe { with(this, LOC, (), |s| s.addin.set_locale(&loc)) }
}

unsafe extern "system" fn set_user_interface_language_code(this: This, lang: *const u16) {
    // SAFETY: the platform passes a NUL-terminated language code.
    let lang = unsafe { wstr::read_nul(lang) };
    // SAFETY: `this` is the UserLanguageBase sub-object.
    unsafe { with(this, ULANG, (), |s| s.addin.set_interface_language(&lang)) }
}

static INIT_DONE: InitDoneVTable = InitDoneVTable {
    dtor: no_dtor,
    #[cfg(not(windows))]
    dtor2: no_dtor,
    init,
    set_mem_manager,
    get_info,
    done,
};

static LANG_EXT: LangExtenderVTable = LangExtenderVTable {
    dtor: no_dtor,
    #[cfg(not(windows))]
    dtor2: no_dtor,
    register_extension_as,
    get_n_props,
    find_prop,
    get_prop_name,
    get_prop_val,
    set_prop_val,
    is_prop_readable,
    is_prop_writable,
    get_n_methods,
    find_method,
    get_method_name,
    get_n_params,
    get_param_def_value,
    has_ret_val,
    call_as_proc,
    call_as_func,
};

static LOCALE: LocaleVTable = LocaleVTable {
    dtor: no_dtor,
    #[cfg(not(windows))]
    dtor2: no_dtor,
    set_locale,
};

static USER_LANG: UserLanguageVTable = UserLanguageVTable {
    dtor: no_dtor,
    #[cfg(not(windows))]
    dtor2: no_dtor,
    set_user_interface_language_code,
};
