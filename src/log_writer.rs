//! Where log lines go once formatted: a bounded in-memory batch, written to stderr by one
//! writer thread (issue 19). The request task never waits for the terminal, a pipe or a file:
//! handing a line over is a lock held for one `memcpy`.
//!
//! Rules:
//! - One `write` call from the formatter is one complete line (tracing-subscriber formats
//!   each event into its own reused per-thread buffer first, then writes it once); a line is
//!   queued whole or dropped whole, never cut.
//! - Lines keep their order: one queue, one writer, and [`flush`] writes under the same
//!   output lock as the thread.
//! - When the writer falls behind (more than [`MAX_PENDING`] bytes queued: a stalled pipe, a
//!   slow disk), new lines are dropped and counted ([`dropped`], exported as
//!   `authgate_log_lines_dropped_total`), never waited for.
//! - Formatting is not done here: this module only moves finished bytes (the formats live in
//!   `logging` and `access_log`).
//!
//! The writer wakes on the first line after it went idle, then lets lines gather for
//! [`GATHER`] before each write, so that under load one `write(2)` carries many lines and
//! request tasks almost never pay for a wake-up.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Most bytes queued and not yet written; lines beyond are dropped.
pub const MAX_PENDING: usize = 1 << 20;
/// How long the writer lets lines gather once one arrived.
pub const GATHER: Duration = Duration::from_millis(2);

/// The queue between formatting threads and the writer thread.
struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Held while a batch is taken and written, so batches reach the sink in order.
    output: Mutex<Box<dyn Write + Send>>,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The writer is waiting for a line (and must be woken).
    idle: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves bytes that are still fine to write.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Queue {
    fn new(sink: Box<dyn Write + Send>) -> Arc<Queue> {
        Arc::new(Queue {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            output: Mutex::new(sink),
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues one line, or counts it dropped when the queue is full.
    fn push(&self, line: &[u8]) {
        let mut pending = lock(&self.pending);
        if pending.bytes.len() + line.len() > MAX_PENDING {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.bytes.extend_from_slice(line);
        if pending.idle {
            pending.idle = false;
            drop(pending);
            self.wake.notify_one();
        }
    }

    /// Writes everything queued so far, in order. `spare` is reused as the next queue.
    fn write_pending(&self, spare: &mut Vec<u8>) {
        self.write_pending_to(&mut lock(&self.output), spare);
    }

    /// [`Queue::write_pending`] with the output lock already held.
    fn write_pending_to(&self, output: &mut Box<dyn Write + Send>, spare: &mut Vec<u8>) {
        spare.clear();
        std::mem::swap(&mut lock(&self.pending).bytes, spare);
        if !spare.is_empty() {
            // Nowhere to report a failed log write: the line is lost, as with stderr closed.
            let _ = output.write_all(spare).and_then(|()| output.flush());
        }
        // Keep a modest buffer for the next batch, not the largest burst ever seen.
        if spare.capacity() > 64 * 1024 {
            *spare = Vec::new();
        }
    }

    fn run(&self) {
        let mut spare = Vec::new();
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.bytes.is_empty() {
                    pending.idle = true;
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(|poison| poison.into_inner());
                }
                pending.idle = false;
            }
            std::thread::sleep(GATHER);
            self.write_pending(&mut spare);
        }
    }
}

/// Starts a writer thread for `sink`; the returned handle queues lines for it.
fn start(sink: Box<dyn Write + Send>) -> io::Result<Arc<Queue>> {
    let queue = Queue::new(sink);
    let writer = Arc::clone(&queue);
    std::thread::Builder::new()
        .name("authgate-log".into())
        .spawn(move || writer.run())?;
    Ok(queue)
}

static STDERR: OnceLock<Option<Arc<Queue>>> = OnceLock::new();

/// The process's stderr queue; `None` when the writer thread could not start (then lines are
/// written directly).
fn stderr_queue() -> Option<&'static Arc<Queue>> {
    STDERR
        .get_or_init(|| start(Box::new(io::stderr())).ok())
        .as_ref()
}

/// Log lines dropped so far because the writer fell behind.
pub fn dropped() -> u64 {
    stderr_queue().map_or(0, |queue| queue.dropped.load(Ordering::Relaxed))
}

/// Writes every queued line now (before the process exits). Waits at most [`FLUSH_WAIT`]
/// for a batch the writer thread is still writing: a stalled stderr must not keep the
/// process from exiting.
pub fn flush() {
    let Some(queue) = STDERR.get().and_then(Option::as_ref) else {
        return;
    };
    let deadline = std::time::Instant::now() + FLUSH_WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(mut output) = queue.output.try_lock() {
            queue.write_pending_to(&mut output, &mut Vec::new());
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The longest [`flush`] waits for the writer thread.
pub const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// The `MakeWriter` of the log subscriber: lines to stderr through the writer thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            queue: stderr_queue(),
        }
    }
}

/// Queues one finished line (`access_log` formats its lines itself, outside tracing).
pub fn write_line(line: &[u8]) {
    let _ = Stderr.make_writer().write(line);
}

/// Hands each write (one formatted line) to the queue.
pub struct Line {
    queue: Option<&'static Arc<Queue>>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self.queue {
            Some(queue) => queue.push(bytes),
            None => io::stderr().write_all(bytes)?,
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;

    /// A sink that records what reaches it and can be stalled.
    #[derive(Clone, Default)]
    struct Sink {
        written: Arc<Mutex<Vec<u8>>>,
        /// While set, every write waits until a message arrives (a stalled pipe).
        gate: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if let Some(gate) = self.gate.lock().unwrap().as_ref() {
                let _ = gate.recv_timeout(Duration::from_secs(5));
            }
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn wait_for(sink: &Sink, len: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let written = sink.written.lock().unwrap().clone();
            if written.len() >= len || Instant::now() > deadline {
                return written;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order() {
        let sink = Sink::default();
        let queue = start(Box::new(sink.clone())).unwrap();
        let mut expected = Vec::new();
        for i in 0..1000 {
            let line = format!("line {i} {}\n", "x".repeat(i % 50));
            queue.push(line.as_bytes());
            expected.extend_from_slice(line.as_bytes());
        }
        assert_eq!(wait_for(&sink, expected.len()), expected);
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_stalled_sink_never_blocks_the_caller_and_overflow_is_counted() {
        let sink = Sink::default();
        let (release, gate) = mpsc::channel();
        *sink.gate.lock().unwrap() = Some(gate);
        let queue = start(Box::new(sink.clone())).unwrap();
        let line = [b'a'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        // Three times what the queue holds, while the sink writes nothing.
        let started = Instant::now();
        for _ in 0..3 * MAX_PENDING / line.len() {
            queue.push(&line);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "pushing took {:?}",
            started.elapsed()
        );
        let dropped = queue.dropped.load(Ordering::Relaxed) as usize;
        assert!(dropped >= MAX_PENDING / line.len(), "dropped {dropped}");
        // Released (the gate's sender gone, every wait ends at once), the sink receives whole
        // lines only.
        drop(release);
        let written = wait_for(&sink, MAX_PENDING / line.len() * line.len());
        assert_eq!(written.len() % line.len(), 0);
        assert!(written.chunks(line.len()).all(|chunk| chunk == line));
    }

    #[test]
    fn flush_writes_what_is_queued_at_once() {
        let sink = Sink::default();
        let queue = Queue::new(Box::new(sink.clone()));
        queue.push(b"one\n");
        queue.push(b"two\n");
        // No writer thread: only the flush can have written these.
        queue.write_pending(&mut Vec::new());
        assert_eq!(sink.written.lock().unwrap().as_slice(), b"one\ntwo\n");
    }
}
