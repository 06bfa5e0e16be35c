//! Raw Native API declarations, written from `shared/ABI.md` (independently of the add-in's own
//! `abi/` crate, so that this host cross-checks it).
//!
//! Itanium C++ ABI (Linux/macOS): every vtable whose interface has a virtual destructor starts with
//! two destructor slots (complete-object D1, deleting D0). `IPlatformInfo`, `IAttachedInfo` and
//! `IMsgBox` have no destructor, their methods start at slot 0.
//!
//! Functions that the *add-in* implements and that return C++ `bool` are declared here as
//! returning `u8`: the two are passed identically (the low byte of the return register), and
//! reading a `u8` stays defined even if a buggy add-in returns a byte other than 0 or 1 (the host
//! reports that as a protocol violation instead of having undefined behaviour).

use std::ffi::{c_char, c_int, c_long, c_ulong, c_void};

/// `VTYPE_EMPTY` (1C `Undefined`).
pub const VTYPE_EMPTY: u16 = 0;
/// `VTYPE_NULL`.
pub const VTYPE_NULL: u16 = 1;
/// `VTYPE_I2` (`shortVal`).
pub const VTYPE_I2: u16 = 2;
/// `VTYPE_I4` (`lVal`).
pub const VTYPE_I4: u16 = 3;
/// `VTYPE_R4` (`fltVal`).
pub const VTYPE_R4: u16 = 4;
/// `VTYPE_R8` (`dblVal`).
pub const VTYPE_R8: u16 = 5;
/// `VTYPE_DATE` (OLE automation date in `date`).
pub const VTYPE_DATE: u16 = 6;
/// `VTYPE_TM` (`struct tm` in `tmVal`).
pub const VTYPE_TM: u16 = 7;
/// `VTYPE_PSTR` (`pstrVal` + `strLen` bytes).
pub const VTYPE_PSTR: u16 = 8;
/// `VTYPE_INTERFACE`.
pub const VTYPE_INTERFACE: u16 = 9;
/// `VTYPE_ERROR`.
pub const VTYPE_ERROR: u16 = 10;
/// `VTYPE_BOOL` (`bVal`).
pub const VTYPE_BOOL: u16 = 11;
/// `VTYPE_VARIANT`.
pub const VTYPE_VARIANT: u16 = 12;
/// `VTYPE_I1`.
pub const VTYPE_I1: u16 = 13;
/// `VTYPE_UI1`.
pub const VTYPE_UI1: u16 = 14;
/// `VTYPE_UI2`.
pub const VTYPE_UI2: u16 = 15;
/// `VTYPE_UI4`.
pub const VTYPE_UI4: u16 = 16;
/// `VTYPE_I8`.
pub const VTYPE_I8: u16 = 17;
/// `VTYPE_UI8`.
pub const VTYPE_UI8: u16 = 18;
/// `VTYPE_INT`.
pub const VTYPE_INT: u16 = 19;
/// `VTYPE_UINT`.
pub const VTYPE_UINT: u16 = 20;
/// `VTYPE_HRESULT`.
pub const VTYPE_HRESULT: u16 = 21;
/// `VTYPE_PWSTR` (`pwstrVal` + `wstrLen` UTF-16 units, terminator not counted).
pub const VTYPE_PWSTR: u16 = 22;
/// `VTYPE_BLOB` (`pstrVal` + `strLen` bytes).
pub const VTYPE_BLOB: u16 = 23;
/// `VTYPE_CLSID`.
pub const VTYPE_CLSID: u16 = 24;

/// `AppType` values reported through `IPlatformInfo`.
pub mod app_type {
    /// `eAppUnknown`.
    pub const UNKNOWN: i32 = -1;
    /// `eAppThinClient`.
    pub const THIN_CLIENT: i32 = 0;
    /// `eAppThickClient`.
    pub const THICK_CLIENT: i32 = 1;
    /// `eAppWebClient`.
    pub const WEB_CLIENT: i32 = 2;
    /// `eAppServer`.
    pub const SERVER: i32 = 3;
    /// `eAppExtConn`.
    pub const EXT_CONN: i32 = 4;
}

/// `Interfaces` values accepted by `IAddInDefBaseEx::GetInterface` (desktop numbering).
pub mod iface {
    /// `eIMsgBox`.
    pub const MSG_BOX: i32 = 0;
    /// `eIPlatformInfo`.
    pub const PLATFORM_INFO: i32 = 1;
    /// `eIAttachedInfo` (desktop; 3 on Android).
    pub const ATTACHED_INFO: i32 = 2;
}

/// Number of destructor slots at the start of a vtable whose interface has a virtual destructor.
#[cfg(not(windows))]
pub const DTOR_SLOTS: usize = 2;
/// Number of destructor slots at the start of a vtable whose interface has a virtual destructor.
#[cfg(windows)]
pub const DTOR_SLOTS: usize = 1;

/// C `struct tm` as glibc declares it (9 `int`s, then `tm_gmtoff` and `tm_zone`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Tm {
    /// Seconds, 0..=60.
    pub tm_sec: c_int,
    /// Minutes, 0..=59.
    pub tm_min: c_int,
    /// Hours, 0..=23.
    pub tm_hour: c_int,
    /// Day of month, 1..=31.
    pub tm_mday: c_int,
    /// Month, 0..=11.
    pub tm_mon: c_int,
    /// Year - 1900.
    pub tm_year: c_int,
    /// Day of week, 0 = Sunday.
    pub tm_wday: c_int,
    /// Day of year, 0..=365.
    pub tm_yday: c_int,
    /// DST flag.
    pub tm_isdst: c_int,
    /// Offset from UTC in seconds (glibc extension).
    #[cfg(unix)]
    pub tm_gmtoff: c_long,
    /// Zone abbreviation (glibc extension); the host always writes null and never reads it.
    #[cfg(unix)]
    pub tm_zone: *const c_char,
}

/// The `{WCHAR_T* pwstrVal; uint32_t wstrLen;}` member of the tVariant union.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WStr {
    /// `pwstrVal`.
    pub ptr: *mut u16,
    /// `wstrLen`: UTF-16 units, terminator not counted.
    pub len: u32,
}

/// The `{char* pstrVal; uint32_t strLen;}` member of the tVariant union (PSTR and BLOB).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Bytes {
    /// `pstrVal`.
    pub ptr: *mut c_char,
    /// `strLen`: bytes.
    pub len: u32,
}

/// Number of 8-byte words of the tVariant payload union (its largest member is `struct tm`).
const PAYLOAD_WORDS: usize = std::mem::size_of::<Tm>().div_ceil(8);

/// The payload union of tVariant. Only the members the host uses are declared; all of them start
/// at offset 0. `b` is `bVal` read as a byte (see the module docs).
#[repr(C)]
#[derive(Clone, Copy)]
pub union Payload {
    /// Whole payload as words (used to zero it without `unsafe`).
    pub raw: [u64; PAYLOAD_WORDS],
    /// `bVal` as a byte.
    pub b: u8,
    /// `i8Val`.
    pub i8: i8,
    /// `shortVal`.
    pub i16: i16,
    /// `lVal` / `intVal`.
    pub i32: i32,
    /// `llVal`.
    pub i64: i64,
    /// `ui8Val`.
    pub u8: u8,
    /// `ushortVal`.
    pub u16: u16,
    /// `ulVal` / `uintVal`.
    pub u32: u32,
    /// `ullVal`.
    pub u64: u64,
    /// `fltVal`.
    pub f32: f32,
    /// `dblVal` / `date`.
    pub f64: f64,
    /// `tmVal`.
    pub tm: Tm,
    /// `pwstrVal` + `wstrLen`.
    pub wstr: WStr,
    /// `pstrVal` + `strLen`.
    pub bytes: Bytes,
}

/// `tVariant`: payload union, `cbElements`, `vt`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TVariant {
    /// The value.
    pub payload: Payload,
    /// `cbElements` (unused by the platform for scalar values).
    pub cb_elements: u32,
    /// Type tag (`VTYPE_*`).
    pub vt: u16,
}

impl TVariant {
    /// An all-zero variant (`VTYPE_EMPTY`), as the platform prepares one for an output.
    pub const fn zeroed() -> TVariant {
        TVariant {
            payload: Payload {
                raw: [0; PAYLOAD_WORDS],
            },
            cb_elements: 0,
            vt: VTYPE_EMPTY,
        }
    }
}

impl Default for TVariant {
    fn default() -> Self {
        TVariant::zeroed()
    }
}

impl std::fmt::Debug for TVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: every TVariant the host handles is fully initialised (created by `zeroed` and
        // then written field by field), and any bit pattern is a valid [u64; N].
        let raw = unsafe { self.payload.raw };
        f.debug_struct("TVariant")
            .field("vt", &self.vt)
            .field("cb_elements", &self.cb_elements)
            .field("payload", &raw)
            .finish()
    }
}

/// `AppInfo` returned by `IPlatformInfo::GetPlatformInfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AppInfo {
    /// `AppVersion`, NUL-terminated UTF-16.
    pub app_version: *const u16,
    /// `UserAgentInformation`, NUL-terminated UTF-16.
    pub user_agent: *const u16,
    /// `Application` (`AppType`).
    pub application: c_int,
}

// Layout pins for Linux/macOS x86_64 and aarch64 (LP64, glibc `struct tm`); numbers from ABI.md §2.1.
#[cfg(all(unix, target_pointer_width = "64"))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<c_long>() == 8);
    assert!(size_of::<c_ulong>() == 8);
    assert!(size_of::<Tm>() == 56);
    assert!(size_of::<Payload>() == 56);
    assert!(size_of::<TVariant>() == 64);
    assert!(align_of::<TVariant>() == 8);
    assert!(offset_of!(TVariant, payload) == 0);
    assert!(offset_of!(TVariant, cb_elements) == 56);
    assert!(offset_of!(TVariant, vt) == 60);
    assert!(offset_of!(WStr, ptr) == 0);
    assert!(offset_of!(WStr, len) == 8);
    assert!(offset_of!(Bytes, ptr) == 0);
    assert!(offset_of!(Bytes, len) == 8);
    assert!(offset_of!(Tm, tm_gmtoff) == 40);
    assert!(offset_of!(Tm, tm_zone) == 48);
    assert!(size_of::<AppInfo>() == 24);
    assert!(offset_of!(AppInfo, application) == 16);
};

// ---------------------------------------------------------------------------------------------
// Add-in side: vtables the host reads from the component object.

/// A destructor slot: never called across the boundary (ABI.md §3.5); declared as an address.
pub type DtorSlot = usize;

/// Vtable of `IInitDoneBase` (sub-object at offset 0).
#[repr(C)]
pub struct InitDoneVtbl {
    /// Destructor slots (never called).
    pub dtor: [DtorSlot; DTOR_SLOTS],
    /// `bool Init(void* connection)`.
    pub init: Option<unsafe extern "system" fn(*mut c_void, *mut c_void) -> u8>,
    /// `bool setMemManager(void* mm)`.
    pub set_mem_manager: Option<unsafe extern "system" fn(*mut c_void, *mut c_void) -> u8>,
    /// `long GetInfo()`.
    pub get_info: Option<unsafe extern "system" fn(*mut c_void) -> c_long>,
    /// `void Done()`.
    pub done: Option<unsafe extern "system" fn(*mut c_void)>,
}

/// Vtable of `ILanguageExtenderBase` (sub-object at offset 8).
#[repr(C)]
pub struct LangVtbl {
    /// Destructor slots (never called).
    pub dtor: [DtorSlot; DTOR_SLOTS],
    /// `bool RegisterExtensionAs(WCHAR_T** name)`.
    pub register_extension_as: Option<unsafe extern "system" fn(*mut c_void, *mut *mut u16) -> u8>,
    /// `long GetNProps()`.
    pub get_n_props: Option<unsafe extern "system" fn(*mut c_void) -> c_long>,
    /// `long FindProp(const WCHAR_T* name)`.
    pub find_prop: Option<unsafe extern "system" fn(*mut c_void, *const u16) -> c_long>,
    /// `const WCHAR_T* GetPropName(long idx, long alias)`.
    pub get_prop_name: Option<unsafe extern "system" fn(*mut c_void, c_long, c_long) -> *const u16>,
    /// `bool GetPropVal(long idx, tVariant* out)`.
    pub get_prop_val: Option<unsafe extern "system" fn(*mut c_void, c_long, *mut TVariant) -> u8>,
    /// `bool SetPropVal(long idx, tVariant* in)`.
    pub set_prop_val: Option<unsafe extern "system" fn(*mut c_void, c_long, *mut TVariant) -> u8>,
    /// `bool IsPropReadable(long idx)`.
    pub is_prop_readable: Option<unsafe extern "system" fn(*mut c_void, c_long) -> u8>,
    /// `bool IsPropWritable(long idx)`.
    pub is_prop_writable: Option<unsafe extern "system" fn(*mut c_void, c_long) -> u8>,
    /// `long GetNMethods()`.
    pub get_n_methods: Option<unsafe extern "system" fn(*mut c_void) -> c_long>,
    /// `long FindMethod(const WCHAR_T* name)`.
    pub find_method: Option<unsafe extern "system" fn(*mut c_void, *const u16) -> c_long>,
    /// `const WCHAR_T* GetMethodName(long idx, long alias)`.
    pub get_method_name:
        Option<unsafe extern "system" fn(*mut c_void, c_long, c_long) -> *const u16>,
    /// `long GetNParams(long idx)`.
    pub get_n_params: Option<unsafe extern "system" fn(*mut c_void, c_long) -> c_long>,
    /// `bool GetParamDefValue(long method, long param, tVariant* out)`.
    pub get_param_def_value:
        Option<unsafe extern "system" fn(*mut c_void, c_long, c_long, *mut TVariant) -> u8>,
    /// `bool HasRetVal(long idx)`.
    pub has_ret_val: Option<unsafe extern "system" fn(*mut c_void, c_long) -> u8>,
    /// `bool CallAsProc(long idx, tVariant* params, long count)`.
    pub call_as_proc:
        Option<unsafe extern "system" fn(*mut c_void, c_long, *mut TVariant, c_long) -> u8>,
    /// `bool CallAsFunc(long idx, tVariant* ret, tVariant* params, long count)`.
    pub call_as_func: Option<
        unsafe extern "system" fn(*mut c_void, c_long, *mut TVariant, *mut TVariant, c_long) -> u8,
    >,
}

/// Vtable of `LocaleBase` (sub-object at offset 16).
#[repr(C)]
pub struct LocaleVtbl {
    /// Destructor slots (never called).
    pub dtor: [DtorSlot; DTOR_SLOTS],
    /// `void SetLocale(const WCHAR_T* loc)`.
    pub set_locale: Option<unsafe extern "system" fn(*mut c_void, *const u16)>,
}

/// Vtable of `UserLanguageBase` (sub-object at offset 24).
#[repr(C)]
pub struct UserLangVtbl {
    /// Destructor slots (never called).
    pub dtor: [DtorSlot; DTOR_SLOTS],
    /// `void SetUserInterfaceLanguageCode(const WCHAR_T* lang)`.
    pub set_user_interface_language_code:
        Option<unsafe extern "system" fn(*mut c_void, *const u16)>,
}

// ---------------------------------------------------------------------------------------------
// Platform side: vtables the host implements.

/// A destructor slot the host fills in (counts unexpected calls; see `unexpected_destructor_calls`).
pub type HostDtor = unsafe extern "system" fn(*mut c_void);

/// Vtable of `IMemoryManager`.
#[repr(C)]
pub struct MemVtbl {
    /// Destructor slots.
    pub dtor: [HostDtor; DTOR_SLOTS],
    /// `bool AllocMemory(void** out, unsigned long bytes)`.
    pub alloc_memory: unsafe extern "system" fn(*mut c_void, *mut *mut c_void, c_ulong) -> bool,
    /// `void FreeMemory(void** block)`.
    pub free_memory: unsafe extern "system" fn(*mut c_void, *mut *mut c_void),
}

/// Vtable of `IAddInDefBaseEx`.
#[repr(C)]
pub struct ConnVtbl {
    /// Destructor slots.
    pub dtor: [HostDtor; DTOR_SLOTS],
    /// `bool AddError(unsigned short wcode, const WCHAR_T* source, const WCHAR_T* descr, long scode)`.
    pub add_error:
        unsafe extern "system" fn(*mut c_void, u16, *const u16, *const u16, c_long) -> bool,
    /// `bool Read(WCHAR_T* name, tVariant* val, long* errCode, WCHAR_T** errText)`.
    pub read: unsafe extern "system" fn(
        *mut c_void,
        *mut u16,
        *mut TVariant,
        *mut c_long,
        *mut *mut u16,
    ) -> bool,
    /// `bool Write(WCHAR_T* name, tVariant* val)`.
    pub write: unsafe extern "system" fn(*mut c_void, *mut u16, *mut TVariant) -> bool,
    /// `bool RegisterProfileAs(WCHAR_T* profile)`.
    pub register_profile_as: unsafe extern "system" fn(*mut c_void, *mut u16) -> bool,
    /// `bool SetEventBufferDepth(long depth)`.
    pub set_event_buffer_depth: unsafe extern "system" fn(*mut c_void, c_long) -> bool,
    /// `long GetEventBufferDepth()`.
    pub get_event_buffer_depth: unsafe extern "system" fn(*mut c_void) -> c_long,
    /// `bool ExternalEvent(WCHAR_T* source, WCHAR_T* message, WCHAR_T* data)`.
    pub external_event:
        unsafe extern "system" fn(*mut c_void, *mut u16, *mut u16, *mut u16) -> bool,
    /// `void CleanEventBuffer()`.
    pub clean_event_buffer: unsafe extern "system" fn(*mut c_void),
    /// `bool SetStatusLine(WCHAR_T* text)`.
    pub set_status_line: unsafe extern "system" fn(*mut c_void, *mut u16) -> bool,
    /// `void ResetStatusLine()`.
    pub reset_status_line: unsafe extern "system" fn(*mut c_void),
    /// `IInterface* GetInterface(Interfaces which)`.
    pub get_interface: unsafe extern "system" fn(*mut c_void, c_int) -> *mut c_void,
}

/// Vtable of `IPlatformInfo` (no destructor slots).
#[repr(C)]
pub struct PlatformInfoVtbl {
    /// `const AppInfo* GetPlatformInfo()`.
    pub get_platform_info: unsafe extern "system" fn(*mut c_void) -> *const AppInfo,
}

/// Vtable of `IAttachedInfo` (no destructor slots).
#[repr(C)]
pub struct AttachedInfoVtbl {
    /// `AttachedType GetAttachedInfo()`.
    pub get_attached_info: unsafe extern "system" fn(*mut c_void) -> c_int,
}

// ---------------------------------------------------------------------------------------------
// Exported C functions (cdecl).

/// `const WCHAR_T* GetClassNames()`.
pub type GetClassNamesFn = unsafe extern "C" fn() -> *const u16;
/// `long GetClassObject(const WCHAR_T* name, IComponentBase** out)`.
pub type GetClassObjectFn = unsafe extern "C" fn(*const u16, *mut *mut c_void) -> c_long;
/// `long DestroyObject(IComponentBase** obj)`.
pub type DestroyObjectFn = unsafe extern "C" fn(*mut *mut c_void) -> c_long;
/// `AppCapabilities SetPlatformCapabilities(AppCapabilities caps)`.
pub type SetPlatformCapabilitiesFn = unsafe extern "C" fn(c_int) -> c_int;
/// `AttachType GetAttachType()`.
pub type GetAttachTypeFn = unsafe extern "C" fn() -> c_int;
