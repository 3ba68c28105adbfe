//! Turning a library's panic on malformed input into an error. Arrow's IPC reader panics on
//! some damaged buffers (offsets past the end) instead of returning an error; a reader of
//! files must not crash, nor print a panic report for what is a bad file.

use std::any::Any;
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });

/// Runs `f`; a panic inside becomes an error carrying its message, and is not printed.
/// Panics elsewhere (other threads, outside `f`) are reported as usual.
pub fn catch_quietly<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.unwrap_or_else(|panic| Err(anyhow::anyhow!("{}", message(&*panic))))
}

/// The text a panic was raised with.
pub fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message")
}
