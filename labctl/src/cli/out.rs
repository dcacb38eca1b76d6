//! Output of the long-running commands (`run`, `test`): a reader that goes
//! away (`labctl run lab.lua | head -3`) must not end them half way, with
//! the lab still up. SIGPIPE is ignored, and a write that fails with EPIPE
//! means "stop printing": the run goes on and tears down as usual.

use std::fmt::Arguments;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Turns SIGPIPE into an EPIPE error on write (see [`line`]).
pub fn survive_closed_pipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Prints one line to stdout, or nothing once stdout's reader has gone.
pub fn line(text: Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(format_args!("{text}\n")).and_then(|()| stdout.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// `println!` for `run` and `test`: see [`line`].
macro_rules! say {
    () => { $crate::cli::out::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::cli::out::line(format_args!($($arg)*)) };
}
pub(crate) use say;
