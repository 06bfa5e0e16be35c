//! The add-in pins its image at the first object, so a thread of ours can never run
//! unmapped code after the platform unloads the library. Its own binary: it must be the
//! first load of the library in the process.

#[test]
fn the_image_stays_mapped_after_dlclose() {
    let path = ws1c_host::default_library_path();
    assert_eq!(ws1c_host::stays_mapped_after_unload(&path), Ok(true));
}
