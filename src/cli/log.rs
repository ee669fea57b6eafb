//! Where log lines go: standard error, except while a live view owns the terminal, when they
//! would be drawn over it; then they are held, and printed once the view has given the terminal
//! back.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard};

/// Most bytes of log held while a view is up; past this, lines are counted and dropped.
const MAX_HELD: usize = 1 << 20;

/// Lines held while a view is up: `None` when they go straight to standard error.
static HELD: Mutex<Option<Held>> = Mutex::new(None);

struct Held {
    bytes: Vec<u8>,
    dropped: u64,
}

fn held() -> MutexGuard<'static, Option<Held>> {
    // A panic while holding the lock leaves nothing half-written worth refusing.
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer of log lines, for `tracing_subscriber::fmt().with_writer(cli::log::writer)`.
pub fn writer() -> LogWriter {
    LogWriter
}

/// Writes to standard error, or into the held lines while a view is up. The formatter writes
/// each event with one `write_all`, so a line is never split between the two.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match held().as_mut() {
            Some(h) if h.bytes.len() + buf.len() <= MAX_HELD => h.bytes.extend_from_slice(buf),
            Some(h) => h.dropped += 1,
            None => return io::stderr().write(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// While this lives, log lines are held; dropping it prints them to standard error.
#[must_use = "log lines are held only while the guard lives"]
pub struct Hold(());

/// Holds log lines until the returned guard is dropped.
pub fn hold() -> Hold {
    *held() = Some(Held {
        bytes: Vec::new(),
        dropped: 0,
    });
    Hold(())
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some(h) = held().take() else { return };
        let mut stderr = io::stderr().lock();
        let _ = stderr.write_all(&h.bytes);
        if h.dropped > 0 {
            let _ = writeln!(
                stderr,
                "ntm: {} more log lines while the live view was up were dropped",
                h.dropped
            );
        }
        let _ = stderr.flush();
    }
}
