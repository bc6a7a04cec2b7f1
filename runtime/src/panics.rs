//! Panics in per-record work: caught where a record is processed or written,
//! so that a bug hit by one record dead-letters that record (stage and
//! reason in its envelope) and the worker carries on with the next one.
//!
//! A panic inside [`catch`] or [`catch_async`] is logged as an internal
//! error and its message returned; any other panic is reported by the
//! standard hook, as usual.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;
use std::task::Poll;

thread_local! {
    /// Whether the thread is inside `catch`, and so a panic is expected to be caught.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The message of the last panic caught on this thread.
    static LAST: Cell<Option<String>> = const { Cell::new(None) };
}

fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    match info.location() {
        Some(l) => format!("{text} (at {}:{})", l.file(), l.line()),
        None => text,
    }
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let standard = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.get() {
                let text = message(info);
                crate::logs::json(
                    "error",
                    &format!("internal error, the record is dead-lettered: {text}"),
                );
                LAST.set(Some(text));
            } else {
                standard(info);
            }
        }));
    });
}

/// Runs `f`; a panic in it becomes `Err` with the panic's message.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let outer = CATCHING.replace(true);
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.set(outer);
    r.map_err(|_| LAST.take().unwrap_or_else(|| "a panic".to_owned()))
}

/// Awaits `f`; a panic while it is polled becomes `Err` with the panic's message.
pub async fn catch_async<F: Future>(f: F) -> Result<F::Output, String> {
    let mut f = std::pin::pin!(f);
    // Once it panicked, the future is not polled again: the result is ready.
    std::future::poll_fn(|cx| match catch(|| f.as_mut().poll(cx)) {
        Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(m) => Poll::Ready(Err(m)),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_gives_its_message() {
        let r: Result<(), String> = catch(|| panic!("boom {}", 7));
        let m = r.unwrap_err();
        assert!(m.starts_with("boom 7 (at runtime/src/panics.rs:"), "{m}");
        assert_eq!(catch(|| 5), Ok(5));
    }

    #[test]
    fn a_panic_while_polled_is_caught() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(catch_async(async {
            tokio::task::yield_now().await;
            if std::hint::black_box(true) {
                panic!("in a future");
            }
            1
        }));
        assert!(r.unwrap_err().starts_with("in a future"));
        assert_eq!(rt.block_on(catch_async(async { 2 })), Ok(2));
    }
}
