//! The panic guard: no unwind ever crosses an `extern` function into the platform.
//!
//! Unwinding out of an `extern "system"` function aborts the process, which here is the
//! 1C client or server with all its users. Every vtable entry and every export runs its
//! body through [`guard`], which turns a panic into the entry's failure value.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

/// Runs `body`; on a panic returns `Err(message)`. The payload is dropped under a guard of
/// its own, since a payload's destructor may panic too.
pub fn catch<R>(body: impl FnOnce() -> R) -> Result<R, String> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => Ok(r),
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Err(msg)
        }
    }
}

/// Runs `body`, returning `failure` if it panics. For entries with nothing to report to.
pub fn guard<R>(failure: R, body: impl FnOnce() -> R) -> R {
    catch(body).unwrap_or(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_failure_values() {
        assert_eq!(guard(-1, || 5), 5);
        assert_eq!(guard(-1, || panic!("x")), -1);
        assert_eq!(
            catch(|| -> i32 { panic!("boom {}", 1) }),
            Err("boom 1".to_owned())
        );
        assert_eq!(
            catch(|| std::panic::panic_any(7u8)),
            Err::<(), _>("panic".to_owned())
        );
    }
}
