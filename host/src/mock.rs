//! A tiny in-process component (four vptrs, Itanium vtables) used to test the host itself
//! without the real add-in. It talks to the host only through the vtables, like a real add-in.

use std::ffi::{c_int, c_long, c_ulong, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::Duration;

use crate::ffi::*;
use crate::host::Exports;
use crate::var::{read_wz, wz};
use crate::{Host, HostOptions, HostTm, Var};

#[repr(C)]
struct Mock {
    vptrs: [*const c_void; 4],
    conn: AtomicPtr<c_void>,
    mm: AtomicPtr<c_void>,
    name: Mutex<String>,
    locale: Mutex<String>,
    calls: AtomicUsize,
}

const PROPS: [(&str, &str); 2] = [("Name", "Имя"), ("Count", "Количество")];
/// (en, ru, params, has_ret)
const METHODS: [(&str, &str, c_long, bool); 9] = [
    ("Echo", "Эхо", 1, true),
    ("Fill", "Заполнить", 2, false),
    ("Fail", "Ошибка", 0, false),
    ("Emit", "Событие", 1, false),
    ("Opt", "Необяз", 2, true),
    ("BadNul", "ПлохойНоль", 0, true),
    ("App", "Приложение", 0, true),
    ("Late", "Поздно", 0, false),
    ("Locale", "Локаль", 0, true),
];

/// A connection pointer moved to the emitter thread (the connection is thread-safe).
struct SendPtr(*mut c_void);
// SAFETY: the pointee (the host's Conn) is Sync and outlives the joined emitter thread.
unsafe impl Send for SendPtr {}
impl SendPtr {
    fn get(&self) -> *mut c_void {
        self.0
    }
}

/// Connection pointer saved by `Late`, used by [`fire_late`] to simulate a straggler thread.
static LATE_CONN: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// # Safety
/// `this` must be sub-object `k` of a live `Mock`.
unsafe fn mock<'a>(this: *mut c_void, k: usize) -> &'a Mock {
    // SAFETY: sub-object k is at offset k * 8 from the start of the repr(C) Mock.
    unsafe { &*this.cast::<*const c_void>().sub(k).cast::<Mock>() }
}

fn mm_vt(mm: *mut c_void) -> &'static MemVtbl {
    // SAFETY: `mm` is the IMemoryManager* the host passed to setMemManager; its first word is
    // the vptr to a static vtable.
    unsafe { &**mm.cast::<*const MemVtbl>() }
}

fn conn_vt(conn: *mut c_void) -> &'static ConnVtbl {
    // SAFETY: `conn` is the IAddInDefBase* the host passed to Init; first word is the vptr.
    unsafe { &**conn.cast::<*const ConnVtbl>() }
}

impl Mock {
    fn alloc(&self, bytes: usize) -> *mut c_void {
        let mm = self.mm.load(Ordering::SeqCst);
        let mut p = std::ptr::null_mut();
        // SAFETY: live memory manager; `p` is a valid out slot.
        assert!(unsafe { (mm_vt(mm).alloc_memory)(mm, &mut p, bytes as c_ulong) });
        p
    }

    fn free(&self, p: *mut c_void) {
        let mm = self.mm.load(Ordering::SeqCst);
        let mut p = p;
        // SAFETY: live memory manager; `p` is a valid in/out slot.
        unsafe { (mm_vt(mm).free_memory)(mm, &mut p) };
    }

    fn alloc_wz(&self, s: &str) -> *mut u16 {
        let w: Vec<u16> = s.encode_utf16().chain([0]).collect();
        let p = self.alloc(w.len() * 2).cast::<u16>();
        // SAFETY: fresh block of w.len() units.
        unsafe { std::ptr::copy_nonoverlapping(w.as_ptr(), p, w.len()) };
        p
    }

    fn set_str(&self, t: &mut TVariant, s: &str, count_nul: bool) {
        self.clear(t);
        let p = self.alloc_wz(s);
        let n = s.encode_utf16().count() + usize::from(count_nul);
        t.payload.wstr = WStr {
            ptr: p,
            len: n as u32,
        };
        t.vt = VTYPE_PWSTR;
    }

    fn clear(&self, t: &mut TVariant) {
        if matches!(t.vt, VTYPE_PWSTR | VTYPE_PSTR | VTYPE_BLOB) {
            // SAFETY: buffer tags carry a pointer in the first member.
            let p = unsafe { t.payload.wstr.ptr };
            if !p.is_null() {
                self.free(p.cast());
            }
        }
        *t = TVariant::zeroed();
    }

    /// Deep copy (buffers re-allocated with the host's manager).
    fn copy(&self, src: &TVariant, dst: &mut TVariant) {
        self.clear(dst);
        *dst = *src;
        if matches!(src.vt, VTYPE_PWSTR | VTYPE_PSTR | VTYPE_BLOB) {
            // SAFETY: buffer tags; the bytes member aliases the wstr member's pointer and length.
            let Bytes { ptr, len } = unsafe { src.payload.bytes };
            let bytes = if src.vt == VTYPE_PWSTR {
                len as usize * 2
            } else {
                len as usize
            };
            let p = self.alloc(bytes);
            // SAFETY: `ptr` holds `bytes` readable bytes (host-encoded); `p` is fresh.
            unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), p.cast::<u8>(), bytes) };
            dst.payload.bytes.ptr = p.cast();
        }
    }

    fn str_of(t: &TVariant) -> String {
        if t.vt != VTYPE_PWSTR {
            return String::new();
        }
        // SAFETY: PWSTR tag.
        let WStr { ptr, len } = unsafe { t.payload.wstr };
        // SAFETY: the host encodes `len` units at `ptr`.
        String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(ptr, len as usize) })
    }

    fn conn(&self) -> (*mut c_void, &'static ConnVtbl) {
        let c = self.conn.load(Ordering::SeqCst);
        (c, conn_vt(c))
    }
}

fn find(name: *const u16, names: impl Iterator<Item = (usize, &'static str)>) -> c_long {
    // SAFETY: the host passes NUL-terminated names.
    let n = String::from_utf16_lossy(&unsafe { read_wz(name) }).to_lowercase();
    names
        .filter(|(_, s)| s.to_lowercase() == n)
        .map(|(i, _)| i as c_long)
        .next()
        .unwrap_or(-1)
}

// ----- IInitDoneBase ---------------------------------------------------------------------------

unsafe extern "system" fn m_init(this: *mut c_void, conn: *mut c_void) -> u8 {
    // SAFETY: sub-object 0 of a live Mock.
    let m = unsafe { mock(this, 0) };
    m.conn.store(conn, Ordering::SeqCst);
    let (c, vt) = m.conn();
    // SAFETY: live connection.
    unsafe { (vt.set_event_buffer_depth)(c, 100) };
    1
}
unsafe extern "system" fn m_set_mm(this: *mut c_void, mm: *mut c_void) -> u8 {
    // SAFETY: sub-object 0 of a live Mock.
    unsafe { mock(this, 0) }.mm.store(mm, Ordering::SeqCst);
    1
}
unsafe extern "system" fn m_get_info(_this: *mut c_void) -> c_long {
    2000
}
unsafe extern "system" fn m_done(this: *mut c_void) {
    // SAFETY: sub-object 0 of a live Mock.
    let m = unsafe { mock(this, 0) };
    m.conn.store(std::ptr::null_mut(), Ordering::SeqCst);
    m.mm.store(std::ptr::null_mut(), Ordering::SeqCst);
}

// ----- ILanguageExtenderBase -------------------------------------------------------------------

unsafe extern "system" fn m_register(this: *mut c_void, out: *mut *mut u16) -> u8 {
    // SAFETY: sub-object 1 of a live Mock.
    let m = unsafe { mock(this, 1) };
    let name = m.name.lock().unwrap().clone();
    // SAFETY: `out` is the host's out slot.
    unsafe { *out = m.alloc_wz(&name) };
    1
}
unsafe extern "system" fn m_n_props(_this: *mut c_void) -> c_long {
    PROPS.len() as c_long
}
unsafe extern "system" fn m_find_prop(_this: *mut c_void, name: *const u16) -> c_long {
    find(
        name,
        PROPS
            .iter()
            .enumerate()
            .flat_map(|(i, (e, r))| [(i, *e), (i, *r)]),
    )
}
unsafe extern "system" fn m_prop_name(this: *mut c_void, idx: c_long, alias: c_long) -> *const u16 {
    // SAFETY: sub-object 1 of a live Mock.
    let m = unsafe { mock(this, 1) };
    match PROPS.get(idx as usize) {
        Some((e, r)) => m.alloc_wz(if alias == 0 { e } else { r }),
        None => std::ptr::null(),
    }
}
unsafe extern "system" fn m_get_prop(this: *mut c_void, idx: c_long, out: *mut TVariant) -> u8 {
    // SAFETY: sub-object 1 of a live Mock; `out` is a zeroed host variant.
    let (m, out) = unsafe { (mock(this, 1), &mut *out) };
    match idx {
        0 => m.set_str(out, &m.name.lock().unwrap().clone(), false),
        1 => {
            out.vt = VTYPE_I4;
            out.payload.i32 = m.calls.load(Ordering::SeqCst) as i32;
        }
        _ => return 0,
    }
    1
}
unsafe extern "system" fn m_set_prop(this: *mut c_void, idx: c_long, v: *mut TVariant) -> u8 {
    // SAFETY: sub-object 1 of a live Mock; `v` is a host variant.
    let (m, v) = unsafe { (mock(this, 1), &*v) };
    if idx != 0 || v.vt != VTYPE_PWSTR {
        return 0;
    }
    *m.name.lock().unwrap() = Mock::str_of(v);
    1
}
unsafe extern "system" fn m_readable(_this: *mut c_void, idx: c_long) -> u8 {
    u8::from((0..2).contains(&idx))
}
unsafe extern "system" fn m_writable(_this: *mut c_void, idx: c_long) -> u8 {
    u8::from(idx == 0)
}
unsafe extern "system" fn m_n_methods(_this: *mut c_void) -> c_long {
    METHODS.len() as c_long
}
unsafe extern "system" fn m_find_method(_this: *mut c_void, name: *const u16) -> c_long {
    find(
        name,
        METHODS
            .iter()
            .enumerate()
            .flat_map(|(i, (e, r, _, _))| [(i, *e), (i, *r)]),
    )
}
unsafe extern "system" fn m_method_name(
    this: *mut c_void,
    idx: c_long,
    alias: c_long,
) -> *const u16 {
    // SAFETY: sub-object 1 of a live Mock.
    let m = unsafe { mock(this, 1) };
    match METHODS.get(idx as usize) {
        Some((e, r, _, _)) => m.alloc_wz(if alias == 0 { e } else { r }),
        None => std::ptr::null(),
    }
}
unsafe extern "system" fn m_n_params(_this: *mut c_void, idx: c_long) -> c_long {
    METHODS.get(idx as usize).map_or(0, |m| m.2)
}
unsafe extern "system" fn m_def_value(
    this: *mut c_void,
    idx: c_long,
    k: c_long,
    out: *mut TVariant,
) -> u8 {
    // SAFETY: sub-object 1 of a live Mock; `out` is a zeroed host variant.
    let (m, out) = unsafe { (mock(this, 1), &mut *out) };
    if idx == 4 && k == 1 {
        m.set_str(out, "dflt", false);
        1
    } else {
        0
    }
}
unsafe extern "system" fn m_has_ret(_this: *mut c_void, idx: c_long) -> u8 {
    u8::from(METHODS.get(idx as usize).is_some_and(|m| m.3))
}
unsafe extern "system" fn m_proc(
    this: *mut c_void,
    idx: c_long,
    p: *mut TVariant,
    n: c_long,
) -> u8 {
    // SAFETY: sub-object 1 of a live Mock.
    let m = unsafe { mock(this, 1) };
    m.calls.fetch_add(1, Ordering::SeqCst);
    let params: &mut [TVariant] = if n == 0 {
        &mut []
    } else {
        // SAFETY: the host passes `n` contiguous variants.
        unsafe { std::slice::from_raw_parts_mut(p, n as usize) }
    };
    let (c, vt) = m.conn();
    match idx {
        1 => {
            let text = format!("filled:{}", Mock::str_of(&params[0]));
            m.set_str(&mut params[1], &text, false);
        }
        2 => {
            let (src, descr) = (wz("Mock"), wz("boom"));
            // SAFETY: live connection, NUL-terminated strings.
            unsafe { (vt.add_error)(c, 1006, src.as_ptr(), descr.as_ptr(), 7) };
            return 0;
        }
        3 => {
            let data = Mock::str_of(&params[0]);
            let c = SendPtr(c);
            std::thread::Builder::new()
                .name("mock-emitter".into())
                .spawn(move || {
                    let (s, msg, d) = (wz("Mock"), wz("Msg"), wz(&data));
                    let c = c.get();
                    // SAFETY: the connection outlives this joined thread.
                    unsafe {
                        (conn_vt(c).external_event)(
                            c,
                            s.as_ptr().cast_mut(),
                            msg.as_ptr().cast_mut(),
                            d.as_ptr().cast_mut(),
                        )
                    }
                })
                .unwrap()
                .join()
                .unwrap();
        }
        7 => LATE_CONN.store(c, Ordering::SeqCst),
        0 | 4 | 5 | 6 | 8 => {} // functions called as procedures: run nothing, succeed
        _ => return 0,
    }
    1
}
unsafe extern "system" fn m_func(
    this: *mut c_void,
    idx: c_long,
    ret: *mut TVariant,
    p: *mut TVariant,
    n: c_long,
) -> u8 {
    // SAFETY: sub-object 1 of a live Mock; `ret` is a zeroed host variant.
    let (m, ret) = unsafe { (mock(this, 1), &mut *ret) };
    m.calls.fetch_add(1, Ordering::SeqCst);
    let params: &mut [TVariant] = if n == 0 {
        &mut []
    } else {
        // SAFETY: the host passes `n` contiguous variants.
        unsafe { std::slice::from_raw_parts_mut(p, n as usize) }
    };
    match idx {
        0 => m.copy(&params[0], ret),
        4 => m.copy(&params[1], ret),
        5 => m.set_str(ret, "x", true),
        6 => {
            let (c, vt) = m.conn();
            // SAFETY: live connection.
            let pi = unsafe { (vt.get_interface)(c, iface::PLATFORM_INFO) };
            ret.vt = VTYPE_I4;
            ret.payload.i32 = if pi.is_null() {
                -100
            } else {
                // SAFETY: IPlatformInfo* with one slot; AppInfo valid while the connection is.
                unsafe {
                    let vt = &**pi.cast::<*const PlatformInfoVtbl>();
                    (*(vt.get_platform_info)(pi)).application
                }
            };
        }
        8 => {
            let s = m.locale.lock().unwrap().clone();
            m.set_str(ret, &s, false);
        }
        _ => return 0,
    }
    1
}

// ----- LocaleBase / UserLanguageBase -----------------------------------------------------------

unsafe extern "system" fn m_set_locale(this: *mut c_void, loc: *const u16) {
    // SAFETY: sub-object 2 of a live Mock; NUL-terminated string.
    let (m, s) = unsafe { (mock(this, 2), read_wz(loc)) };
    m.locale
        .lock()
        .unwrap()
        .push_str(&String::from_utf16_lossy(&s));
}
unsafe extern "system" fn m_set_lang(this: *mut c_void, lang: *const u16) {
    // SAFETY: sub-object 3 of a live Mock; NUL-terminated string.
    let (m, s) = unsafe { (mock(this, 3), read_wz(lang)) };
    let mut l = m.locale.lock().unwrap();
    l.push('|');
    l.push_str(&String::from_utf16_lossy(&s));
}

static INIT_VT: InitDoneVtbl = InitDoneVtbl {
    dtor: [0; DTOR_SLOTS],
    init: Some(m_init),
    set_mem_manager: Some(m_set_mm),
    get_info: Some(m_get_info),
    done: Some(m_done),
};
static LANG_VT: LangVtbl = LangVtbl {
    dtor: [0; DTOR_SLOTS],
    register_extension_as: Some(m_register),
    get_n_props: Some(m_n_props),
    find_prop: Some(m_find_prop),
    get_prop_name: Some(m_prop_name),
    get_prop_val: Some(m_get_prop),
    set_prop_val: Some(m_set_prop),
    is_prop_readable: Some(m_readable),
    is_prop_writable: Some(m_writable),
    get_n_methods: Some(m_n_methods),
    find_method: Some(m_find_method),
    get_method_name: Some(m_method_name),
    get_n_params: Some(m_n_params),
    get_param_def_value: Some(m_def_value),
    has_ret_val: Some(m_has_ret),
    call_as_proc: Some(m_proc),
    call_as_func: Some(m_func),
};
static LOCALE_VT: LocaleVtbl = LocaleVtbl {
    dtor: [0; DTOR_SLOTS],
    set_locale: Some(m_set_locale),
};
static LANG_CODE_VT: UserLangVtbl = UserLangVtbl {
    dtor: [0; DTOR_SLOTS],
    set_user_interface_language_code: Some(m_set_lang),
};

// ----- exports ---------------------------------------------------------------------------------

static CLASS_NAMES: [u16; 14] = {
    let s = b"Client|Server\0";
    let mut out = [0u16; 14];
    let mut i = 0;
    while i < s.len() {
        out[i] = s[i] as u16;
        i += 1;
    }
    out
};

unsafe extern "C" fn x_class_names() -> *const u16 {
    CLASS_NAMES.as_ptr()
}
unsafe extern "C" fn x_class_object(name: *const u16, out: *mut *mut c_void) -> c_long {
    // SAFETY: the host passes a NUL-terminated name.
    let name = String::from_utf16_lossy(&unsafe { read_wz(name) });
    if name != "Client" && name != "Server" {
        return 0;
    }
    let b = Box::new(Mock {
        vptrs: [
            (&INIT_VT as *const InitDoneVtbl).cast(),
            (&LANG_VT as *const LangVtbl).cast(),
            (&LOCALE_VT as *const LocaleVtbl).cast(),
            (&LANG_CODE_VT as *const UserLangVtbl).cast(),
        ],
        conn: AtomicPtr::default(),
        mm: AtomicPtr::default(),
        name: Mutex::new(name),
        locale: Mutex::new(String::new()),
        calls: AtomicUsize::new(0),
    });
    // SAFETY: `out` is the host's out slot.
    unsafe { *out = Box::into_raw(b).cast() };
    1
}
unsafe extern "C" fn x_destroy(pp: *mut *mut c_void) -> c_long {
    // SAFETY: `pp` is the host's slot holding a pointer from x_class_object.
    unsafe {
        if (*pp).is_null() {
            return -1;
        }
        drop(Box::from_raw((*pp).cast::<Mock>()));
        *pp = std::ptr::null_mut();
    }
    0
}
unsafe extern "C" fn x_caps(_caps: c_int) -> c_int {
    3
}
unsafe extern "C" fn x_attach() -> c_int {
    3
}

fn host() -> Host {
    Host::from_exports(Exports {
        get_class_names: x_class_names,
        get_class_object: x_class_object,
        destroy_object: x_destroy,
        set_platform_capabilities: Some(x_caps),
        get_attach_type: Some(x_attach),
    })
}

/// Simulates a straggler thread: an ExternalEvent through the connection saved by `Late`.
fn fire_late() -> bool {
    let c = LATE_CONN.swap(std::ptr::null_mut(), Ordering::SeqCst);
    let (s, m, d) = (wz("Mock"), wz("Late"), wz(""));
    // SAFETY: the host keeps every connection alive while it lives.
    unsafe {
        (conn_vt(c).external_event)(
            c,
            s.as_ptr().cast_mut(),
            m.as_ptr().cast_mut(),
            d.as_ptr().cast_mut(),
        )
    }
}

fn assert_clean(h: &Host) {
    let s = h.mem();
    assert_eq!(s.outstanding, 0, "{s:?}");
    assert_eq!(s.unknown_frees, 0, "{s:?}");
    assert_eq!(s.calls_after_all_done, 0, "{s:?}");
    assert_eq!(s.calls_outside_platform_calls, 0, "{s:?}");
    assert_eq!(h.calls_after_done(), 0);
}

#[test]
fn full_lifecycle() {
    let h = host();
    assert_eq!(h.class_names(), "Client|Server");
    assert_eq!(h.attach_type(), Some(3));
    let o = h.create("Client", HostOptions::default()).unwrap();
    assert_eq!(h.negotiated_capabilities(), Some(3));
    assert_eq!(o.extension_name(), "Client");
    assert_eq!(o.info(), 2000);
    let c = o.conn();
    assert_eq!(c.buffer_depth(), 100);

    assert_eq!(o.n_props(), 2);
    assert_eq!(o.prop_name(0, 0).as_deref(), Some("Name"));
    assert_eq!(o.prop_name(1, 1).as_deref(), Some("Количество"));
    assert_eq!(o.prop_name(5, 0), None);
    assert_eq!(o.n_methods(), 9);
    assert_eq!(o.method_name(1, 1).as_deref(), Some("Заполнить"));
    assert_eq!(o.find_method("эХо"), 0);
    assert_eq!(o.find_method("nope"), -1);
    assert_eq!(o.find_prop("имя"), 0);
    assert!(o.is_readable(1) && !o.is_writable(1));
    assert_eq!(o.n_params(4), 2);
    assert!(o.has_ret_val(0) && !o.has_ret_val(1));
    assert_eq!(o.param_default(4, 1), Some(Var::from("dflt")));
    assert_eq!(o.param_default(4, 0), None);

    assert_eq!(o.get("Name").unwrap(), Var::from("Client"));
    o.set("Имя", Var::from("Renamed")).unwrap();
    assert_eq!(o.get("Name").unwrap(), Var::from("Renamed"));
    assert!(o.set("Count", Var::I4(1)).is_err());
    assert!(o.get("Nope").is_err());

    for v in [
        Var::from("строка"),
        Var::Blob(vec![1, 2, 3]),
        Var::Blob(vec![]),
        Var::PStr(b"abc".to_vec()),
        Var::I4(7),
        Var::R8(2.5),
        Var::Bool(true),
        Var::Tm(HostTm::new(2026, 3, 1, 10, 0, 0)),
        Var::Empty,
    ] {
        let mut args = [v.clone()];
        assert_eq!(o.call("Echo", &mut args).unwrap(), v);
        assert_eq!(args[0], v);
    }

    let mut args = [Var::from("in"), Var::I4(5)];
    assert_eq!(o.call("Fill", &mut args).unwrap(), Var::Empty);
    assert_eq!(args[1], Var::from("filled:in"));
    let mut args = [Var::from("in"), Var::from("old buffer")];
    o.call("Заполнить", &mut args).unwrap();
    assert_eq!(args[1], Var::from("filled:in"));

    assert_eq!(o.call("Opt", &mut [Var::I4(1)]).unwrap(), Var::from("dflt"));
    assert_eq!(
        o.call("Opt", &mut [Var::I4(1), Var::I4(2)]).unwrap(),
        Var::I4(2)
    );
    let e = o.call("Opt", &mut []).unwrap_err();
    assert!(e.text.contains("missing mandatory argument 0"), "{e}");
    let e = o.call("Echo", &mut [Var::Empty, Var::Empty]).unwrap_err();
    assert!(e.text.contains("too many arguments"), "{e}");
    let e = o.call("Nope", &mut []).unwrap_err();
    assert_eq!(e.text, "method not found: Nope");

    let e = o.call("Fail", &mut []).unwrap_err();
    assert_eq!((e.text.as_str(), e.wcode, e.scode), ("boom", 1006, 7));
    assert_eq!(c.last_error().as_deref(), Some("boom"));

    o.call_proc("Echo", &mut [Var::I4(1)]).unwrap();
    assert_eq!(
        o.raw_call_with(0, &mut [Var::I4(3)], 1, true).unwrap(),
        Var::I4(3)
    );
    assert_eq!(
        o.get_prop_raw(1).unwrap().as_i64(),
        Some(o.get("Count").unwrap().as_i64().unwrap())
    );

    o.call("Emit", &mut [Var::from("payload")]).unwrap();
    assert!(c.wait_events(1, Duration::from_secs(5)));
    let ev = c.take_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].source.as_str(), ev[0].message.as_str()),
        ("Mock", "Msg")
    );
    assert_eq!(ev[0].data, "payload");
    assert_eq!(ev[0].thread_name.as_deref(), Some("mock-emitter"));
    assert_ne!(ev[0].thread_id, std::thread::current().id());
    assert_eq!(c.external_event_calls(), 1);
    assert_eq!(c.refused(), 0);

    assert_eq!(o.call("App", &mut []).unwrap(), Var::I4(0));
    assert_eq!(c.get_interface_calls(), 1);
    assert_eq!(o.call("Locale", &mut []).unwrap(), Var::from("ru_RU|ru"));
    assert!(c.violations().is_empty(), "{:?}", c.violations());

    assert_eq!(o.call("BadNul", &mut []).unwrap(), Var::from("x\0"));
    assert_eq!(c.violations().len(), 1, "{:?}", c.violations());

    o.destroy();
    assert!(c.is_done());
    assert_clean(&h);
    assert_eq!(h.violations().len(), 1);
}

#[test]
fn server_refuses_events() {
    let h = host();
    let o = h
        .create(
            "Server",
            HostOptions {
                mem_first: true,
                ..HostOptions::server()
            },
        )
        .unwrap();
    let c = o.conn();
    assert_eq!(o.call("App", &mut []).unwrap(), Var::I4(3));
    o.call("Emit", &mut [Var::from("x")]).unwrap();
    assert!(c.wait_event_calls(1, Duration::from_secs(5)));
    assert!(!c.wait_events(1, Duration::from_millis(10)));
    assert_eq!((c.external_event_calls(), c.refused()), (1, 1));
    drop(o);
    assert_clean(&h);
}

#[test]
fn buffer_depth_and_refusal() {
    let h = host();
    let o = h
        .create(
            "Client",
            HostOptions {
                honour_buffer_depth: true,
                ..HostOptions::english()
            },
        )
        .unwrap();
    assert_eq!(o.call("Locale", &mut []).unwrap(), Var::from("en_US|en"));
    let c = o.conn();
    for _ in 0..101 {
        o.call("Emit", &mut [Var::from("e")]).unwrap();
    }
    assert_eq!((c.events_snapshot().len(), c.refused()), (100, 1));
    assert_eq!(c.take_events().len(), 100);
    o.call("Emit", &mut [Var::from("e")]).unwrap();
    assert_eq!(c.events_snapshot().len(), 1);

    let o2 = h
        .create(
            "Client",
            HostOptions {
                refuse_events: true,
                ..Default::default()
            },
        )
        .unwrap();
    o2.call("Emit", &mut [Var::from("e")]).unwrap();
    assert_eq!(o2.conn().refused(), 1);
    drop((o, o2));
    assert_clean(&h);
}

#[test]
fn late_calls_are_counted() {
    let h = host();
    let mut o = h.create("Client", HostOptions::default()).unwrap();
    let c = o.conn();
    o.call("Late", &mut []).unwrap();
    o.done();
    assert_eq!(o.done(), Duration::ZERO, "idempotent");
    assert!(!fire_late());
    assert_eq!(c.calls_after_done(), 1);
    assert_eq!(h.calls_after_done(), 1);
    assert!(c.wait_event_calls(1, Duration::ZERO));
    o.destroy();
    assert_eq!(h.mem().outstanding, 0);
}

#[test]
fn without_capabilities_get_interface_is_a_violation() {
    let h = host();
    assert_eq!(h.set_platform_capabilities(0), 0);
    let o = h.create("Client", HostOptions::default()).unwrap();
    assert_eq!(h.negotiated_capabilities(), None);
    o.call("App", &mut []).unwrap();
    assert_eq!(o.conn().violations().len(), 1);
    drop(o);
    assert_clean(&h);
}

#[test]
fn unknown_class_and_threads() {
    let h = std::sync::Arc::new(host());
    assert!(matches!(
        h.create("Nope", HostOptions::default()),
        Err(crate::HostError::Create { .. })
    ));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let h = h.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let o = h.create("Client", HostOptions::default()).unwrap();
                    let mut a = [Var::from(format!("t{i}"))];
                    assert_eq!(o.call("Echo", &mut a).unwrap(), a[0]);
                    // Objects may move between threads.
                    std::thread::spawn(move || o.destroy()).join().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_clean(&h);
    assert!(h.violations().is_empty(), "{:?}", h.violations());
}
