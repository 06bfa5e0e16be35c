//! The Native API layer of the WebSocket add-in for 1C:Enterprise: the only crate with
//! `unsafe` code.
//!
//! It owns everything that touches the platform: the exported functions, the component
//! object with its four vptrs and static vtables ([`component`]), `tVariant` and its
//! conversion ([`types`], [`variant`]), UTF-16 ([`wstr`]), the platform's memory manager
//! ([`memory`]), the disarmable connection handle ([`platform`]) and the panic guard
//! ([`guard`]). Behaviour lives in the safe core crate `ws1c`; this crate only translates.
//!
//! `shared/ABI.md` of the project is the reference for every offset and rule used here.

pub mod component;
pub mod guard;
pub mod memory;
pub mod pin;
pub mod platform;
pub mod trim;
pub mod types;
pub mod variant;
pub mod wstr;

use std::ffi::{c_int, c_long, c_void};
use std::sync::atomic::Ordering;

use ws1c::objects::CLASS_NAMES;

use crate::component::Component;
use crate::guard::guard;

/// `GetClassNames`' answer: static, NUL-terminated, never freed.
static CLASS_NAMES_W: [u16; CLASS_NAMES.len() + 1] = wstr::ascii_wide(CLASS_NAMES);

/// The capability level we implement (`eAppCapabilities3`).
const CAPABILITIES: c_int = 3;
/// `eCanAttachAny`: in the platform's process or isolated.
const ATTACH_ANY: c_int = 3;

/// The class names, `Client|Server|SocketIO`.
#[unsafe(no_mangle)]
pub extern "C" fn GetClassNames() -> *const u16 {
    CLASS_NAMES_W.as_ptr()
}

/// Creates an object of class `name` into `*out`; 1 on success, 0 for an unknown class.
///
/// # Safety
/// `name` is a NUL-terminated UTF-16 string or null; `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetClassObject(name: *const u16, out: *mut *mut c_void) -> c_long {
    guard(0, || {
        if out.is_null() {
            return 0;
        }
        // SAFETY: NUL-terminated per the contract.
        let name = unsafe { wstr::read_nul(name) };
        let Some(obj) = Component::new(&name) else {
            return 0;
        };
        pin::pin_image();
        trim::install();
        // SAFETY: `out` is writable and checked non-null; ownership of the box goes to the
        // platform until `DestroyObject`.
        unsafe { *out = Box::into_raw(obj).cast() };
        1
    })
}

/// Frees an object made by `GetClassObject` and nulls the pointer; 0 on success.
///
/// # Safety
/// `obj` is null or points to null or to a pointer `GetClassObject` returned and that was
/// not destroyed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn DestroyObject(obj: *mut *mut c_void) -> c_long {
    guard(-1, || {
        if obj.is_null() {
            return -1;
        }
        // SAFETY: readable per the contract.
        let p = unsafe { *obj };
        if p.is_null() {
            return -1;
        }
        // SAFETY: `p` came from Box::into_raw in GetClassObject and is destroyed once; the
        // platform stops using it now.
        drop(unsafe { Box::from_raw(p.cast::<Component>()) });
        // SAFETY: writable per the contract.
        unsafe { *obj = std::ptr::null_mut() };
        0
    })
}

/// Remembers what the platform offers; answers the level we implement.
#[unsafe(no_mangle)]
pub extern "C" fn SetPlatformCapabilities(capabilities: c_int) -> c_int {
    platform::PLATFORM_CAPABILITIES.store(capabilities, Ordering::Release);
    CAPABILITIES
}

/// We can run in the platform's process or isolated.
#[unsafe(no_mangle)]
pub extern "C" fn GetAttachType() -> c_int {
    ATTACH_ANY
}
