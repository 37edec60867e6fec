//! A watch over a wait this process cannot bound by itself. A GPU collective (NCCL) is a kernel
//! that spins on the device until every rank takes part, so a rank that dies inside it leaves the
//! others waiting for ever in their next read from the device, where no timeout applies. While a
//! [`Watch`] lives, a thread keeps the time; past the timeout it reports what was waited for.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Dropping it ends the watch (the wait finished in time).
pub struct Watch {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Watches `what` for `timeout`; if the returned [`Watch`] still lives then, `on_timeout` gets a
/// message naming `what` (on the watching thread).
pub fn watch(timeout: Duration, what: String, on_timeout: impl FnOnce(String) + Send + 'static) -> Watch {
    let (done, finished) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // the sender is dropped when the wait ends: Disconnected, nothing to report
        if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(timeout) {
            on_timeout(format!("{what} did not finish within {:.0} s (R1KIT_DIST_TIMEOUT): another rank died or hangs inside it", timeout.as_secs_f64()));
        }
    });
    Watch { done: Some(done), thread: Some(thread) }
}

impl Drop for Watch {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn reports_a_wait_that_outlives_the_timeout_and_only_that() {
        let reported = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = |r: &Arc<Mutex<Vec<String>>>| {
            let r = r.clone();
            move |m: String| r.lock().unwrap().push(m)
        };
        // ends in time: nothing reported, and dropping returns at once
        let started = std::time::Instant::now();
        drop(watch(Duration::from_secs(30), "a quick wait".into(), log(&reported)));
        assert!(started.elapsed() < Duration::from_secs(5));
        // outlives its timeout: reported, naming the wait
        let long = watch(Duration::from_millis(50), "summing the gradients over NCCL".into(), log(&reported));
        std::thread::sleep(Duration::from_millis(400));
        drop(long);
        let reported = reported.lock().unwrap();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert!(reported[0].starts_with("summing the gradients over NCCL did not finish within 0 s"), "{}", reported[0]);
    }
}
