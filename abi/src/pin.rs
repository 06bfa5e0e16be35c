//! Pins the add-in's image in memory for the life of the process.
//!
//! Why: the platform may unload a library whose objects are all destroyed, but a runtime
//! worker that is still finishing (a `Done()` whose bounded wait expired) would then execute
//! unmapped code. Pinning once, at the first object, makes the image outlive every thread
//! we start. It costs one extra reference to a library the platform keeps loaded anyway.

use std::sync::Once;

/// Pins the image once per process; failures are ignored (the image then stays as loaded).
pub fn pin_image() {
    static PIN: Once = Once::new();
    PIN.call_once(pin_impl);
}

#[cfg(unix)]
fn pin_impl() {
    let anchor = pin_image as *const () as *const libc::c_void;
    // SAFETY: `info` is a plain C struct dladdr fills in; `anchor` is an address inside
    // this library (a function of ours).
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::dladdr(anchor, &mut info) } == 0 || info.dli_fname.is_null() {
        return;
    }
    // SAFETY: dli_fname is the NUL-terminated path of the already-loaded object that
    // contains `anchor`; RTLD_NOLOAD only takes a reference, RTLD_NODELETE keeps it mapped.
    // The handle is deliberately never closed: that reference is the pin.
    let _ = unsafe {
        libc::dlopen(
            info.dli_fname,
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        )
    };
}

#[cfg(windows)]
fn pin_impl() {
    type Hmodule = *mut core::ffi::c_void;
    const GET_MODULE_HANDLE_EX_FLAG_PIN: u32 = 0x1;
    const GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS: u32 = 0x4;
    unsafe extern "system" {
        fn GetModuleHandleExW(flags: u32, name: *const u16, module: *mut Hmodule) -> i32;
    }
    let mut module: Hmodule = std::ptr::null_mut();
    // SAFETY: FROM_ADDRESS takes any address inside the module (a function of ours) in place
    // of a name; PIN keeps the module loaded until the process ends.
    let _ = unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_PIN | GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
            pin_image as *const () as *const u16,
            &mut module,
        )
    };
}

#[cfg(not(any(unix, windows)))]
fn pin_impl() {}
