//! Child processes run with a deadline: exec credential plugins (`kube::auth`) and nginx
//! (`updater::nginx`).

use std::io;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Waits for `child` to exit, checking every 5 ms. Past `deadline`, or when waiting fails, the
/// child is killed and reaped: `Ok(None)`, or the error.
pub fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        match child.try_wait() {
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(Some(status)) => return Ok(Some(status)),
            unfinished => {
                kill(child);
                return unfinished;
            }
        }
    }
}

/// Kills `child` and reaps it.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
