//! One proxied connection: connect upstream, then two pumps (up and down) that count and time
//! every chunk and, when the direction is shaped, hold each chunk until the emulated link
//! releases it. Half-closes propagate as half-closes, resets as resets.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::buffers::{BufferPool, RelayBuffer};
use super::flights::{Dir, FlightTracker};
use super::timeline::Timeline;
use super::{ConnectionReport, LiveConnection, ProxyEvent, Shared};

/// How one direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PumpEnd {
    /// The source sent FIN; it was passed on as a half-close.
    Eof,
    /// Reading the source failed (it reset): the destination gets a reset.
    ReadReset,
    /// Writing the destination failed (it reset or vanished): the source gets a reset.
    WriteFailed,
    /// The proxy is shutting down.
    Stopped,
}

/// Per-connection counters, updated by both pumps.
struct ConnState {
    bytes: [u64; 2],
    first: [Option<Duration>; 2],
    last: [Option<Duration>; 2],
    flights: FlightTracker,
    timeline: Timeline,
}

struct Recorder {
    shared: Arc<Shared>,
    opened: Instant,
    state: Mutex<ConnState>,
    live: Arc<LiveConnection>,
}

fn slot(dir: Dir) -> usize {
    match dir {
        Dir::Up => 0,
        Dir::Down => 1,
    }
}

impl Recorder {
    /// Counts `bytes` that reached the far end just now (unshaped).
    fn record(&self, dir: Dir, bytes: usize) {
        self.record_at(dir, bytes, Instant::now(), Duration::ZERO);
    }

    /// Counts `bytes` that reached the far end at `now`; a shaped link took `serialise` to
    /// deliver them, so the timelines spread them over that time.
    fn record_at(&self, dir: Dir, bytes: usize, now: Instant, serialise: Duration) {
        let at = now.saturating_duration_since(self.opened);
        let from = at.saturating_sub(serialise);
        let bytes = bytes as u64;
        {
            let mut s = self.state.lock().expect("connection state lock");
            let i = slot(dir);
            s.bytes[i] += bytes;
            s.first[i].get_or_insert(from);
            s.last[i] = Some(at);
            if s.flights.record(dir, bytes, at) {
                self.shared.counters.flights.fetch_add(1, Ordering::Relaxed);
                self.live.flights.fetch_add(1, Ordering::Relaxed);
            }
            s.timeline.add_spread(dir, from, at, bytes);
        }
        let live = match dir {
            Dir::Up => &self.live.bytes_up,
            Dir::Down => &self.live.bytes_down,
        };
        live.fetch_add(bytes, Ordering::Relaxed);
        self.shared.count(dir, bytes, now, serialise);
    }

    fn report(
        &self,
        client: SocketAddr,
        upstream: Option<SocketAddr>,
        end: String,
        id: u64,
    ) -> ConnectionReport {
        let s = self.state.lock().expect("connection state lock");
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        ConnectionReport {
            id,
            client,
            upstream,
            seconds: self.opened.elapsed().as_secs_f64(),
            bytes_up: s.bytes[0],
            bytes_down: s.bytes[1],
            first_byte_up: secs(s.first[0]),
            last_byte_up: secs(s.last[0]),
            first_byte_down: secs(s.first[1]),
            last_byte_down: secs(s.last[1]),
            flight_count: s.flights.count(),
            round_trips: s.flights.round_trips(),
            flights: s.flights.flights().to_vec(),
            peak_up_bps: s.timeline.peak_bps(Dir::Up),
            peak_down_bps: s.timeline.peak_bps(Dir::Down),
            timeline: s.timeline.clone(),
            end,
        }
    }
}

/// Keeps the open-connections gauge and table right however the connection ends.
struct OpenGuard<'a>(&'a Shared, u64);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.counters.open.fetch_sub(1, Ordering::Relaxed);
        self.0
            .counters
            .live
            .lock()
            .expect("live connections lock")
            .remove(&self.1);
    }
}

async fn connect_upstream(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), String> {
    let mut last = String::from("no upstream address");
    for &addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok((s, addr)),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {timeout:?}"),
        }
    }
    Err(last)
}

pub(super) async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let live = Arc::new(LiveConnection {
        client: peer,
        opened: Instant::now(),
        bytes_up: Default::default(),
        bytes_down: Default::default(),
        flights: Default::default(),
    });
    shared
        .counters
        .live
        .lock()
        .expect("live connections lock")
        .insert(id, live.clone());
    let open = OpenGuard(&shared, id);
    let recorder = Recorder {
        live,
        shared: shared.clone(),
        opened: Instant::now(),
        state: Mutex::new(ConnState {
            bytes: [0; 2],
            first: [None; 2],
            last: [None; 2],
            flights: FlightTracker::default(),
            timeline: Timeline::new(shared.config.bin),
        }),
    };
    // The proxy must add no Nagle delay to the protocol it watches.
    let _ = client.set_nodelay(true);
    let connected = tokio::select! {
        _ = stop.cancelled() => None,
        c = connect_upstream(&shared.config.upstream, shared.config.connect_timeout) => Some(c),
    };
    let (upstream, upstream_addr) = match connected {
        Some(Ok(pair)) => pair,
        Some(Err(e)) => {
            shared
                .counters
                .upstream_failures
                .fetch_add(1, Ordering::Relaxed);
            warn!(id, client = %peer, error = %e, "upstream connection failed; closing the client");
            drop(client);
            let end = format!("upstream failed: {e}");
            close(&shared, open, recorder.report(peer, None, end, id));
            return;
        }
        None => {
            // Stopped while connecting: the client is reset, as every open connection is.
            arm_reset(&client);
            drop(client);
            let end = "proxy stopped".to_string();
            close(&shared, open, recorder.report(peer, None, end, id));
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let _ = shared.events.send(ProxyEvent::Open {
        id,
        client: peer,
        upstream: upstream_addr,
    });

    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let (end, resets) = {
        let up = pump(
            &mut client_read,
            &mut upstream_write,
            Dir::Up,
            &recorder,
            &shared,
        );
        let down = pump(
            &mut upstream_read,
            &mut client_write,
            Dir::Down,
            &recorder,
            &shared,
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                // Whatever is still in flight is lost: both sides get a reset, so neither
                // mistakes the cut for a clean end of stream.
                _ = stop.cancelled() => break ("proxy stopped".to_string(), Resets { client: true, upstream: true }),
                end = &mut up, if !up_done => match end {
                    PumpEnd::Eof => up_done = true,
                    failed => break failure(failed, Dir::Up),
                },
                end = &mut down, if !down_done => match end {
                    PumpEnd::Eof => down_done = true,
                    failed => break failure(failed, Dir::Down),
                },
            }
            if up_done && down_done {
                break ("closed".to_string(), Resets::default());
            }
        }
    };
    // The write half of a side that gets a reset is dropped without the shutdown (FIN) it
    // would otherwise send first.
    if resets.upstream {
        arm_reset(upstream_write.as_ref());
        upstream_write.forget();
    }
    if resets.client {
        arm_reset(client_write.as_ref());
        client_write.forget();
    }
    debug!(id, client = %peer, end, "connection ended");
    close(
        &shared,
        open,
        recorder.report(peer, Some(upstream_addr), end, id),
    );
}

/// Reports a connection closed; it is counted as closed (the guard dropped) before anyone
/// hears so.
fn close(shared: &Shared, open: OpenGuard<'_>, report: ConnectionReport) {
    drop(open);
    let _ = shared.events.send(ProxyEvent::Close(Box::new(report)));
}

/// Makes the socket's close a reset (RST) rather than a FIN: linger 0.
fn arm_reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// Which sides of a connection get a reset as it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Resets {
    client: bool,
    upstream: bool,
}

/// Names a failure and says which side must get a reset: the destination when the source reset,
/// the source when the destination went away.
fn failure(end: PumpEnd, dir: Dir) -> (String, Resets) {
    let (source, dest) = match dir {
        Dir::Up => ("client", "upstream"),
        Dir::Down => ("upstream", "client"),
    };
    let toward_dest = Resets {
        client: dir == Dir::Down,
        upstream: dir == Dir::Up,
    };
    let toward_source = Resets {
        client: dir == Dir::Up,
        upstream: dir == Dir::Down,
    };
    match end {
        PumpEnd::ReadReset => (format!("reset by {source}"), toward_dest),
        PumpEnd::WriteFailed => (format!("{dest} went away"), toward_source),
        PumpEnd::Eof | PumpEnd::Stopped => ("closed".to_string(), Resets::default()),
    }
}

async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    dir: Dir,
    recorder: &Recorder,
    shared: &Shared,
) -> PumpEnd {
    let (spec, _) = shared.link(dir);
    if spec.is_shaped() {
        return pump_shaped(from, to, dir, recorder, shared).await;
    }
    #[cfg(target_os = "linux")]
    if shared.config.splice {
        if let Ok(pipe) = crate::os::Pipe::new(shared.config.buffer_size.min(1 << 20)) {
            return pump_splice(from, to, dir, recorder, pipe).await;
        }
    }
    pump_direct(from, to, dir, recorder, &shared.buffers).await
}

/// The zero-copy path: socket -> pipe -> socket with `splice(2)`, counting what each call
/// moves. The pipe is always drained before more is read, so a full pipe is never mistaken for
/// an empty socket.
#[cfg(target_os = "linux")]
async fn pump_splice(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    dir: Dir,
    recorder: &Recorder,
    pipe: crate::os::Pipe,
) -> PumpEnd {
    use tokio::io::Interest;
    let capacity = pipe.capacity();
    loop {
        let source = (*from).as_ref();
        let moved = loop {
            if source.readable().await.is_err() {
                return PumpEnd::ReadReset;
            }
            match source.try_io(Interest::READABLE, || pipe.fill_from(source, capacity)) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return PumpEnd::ReadReset,
            }
        };
        if moved == 0 {
            let _ = to.shutdown().await;
            return PumpEnd::Eof;
        }
        recorder.record(dir, moved);
        let mut pending = moved;
        let sink = (*to).as_ref();
        while pending > 0 {
            if sink.writable().await.is_err() {
                return PumpEnd::WriteFailed;
            }
            match sink.try_io(Interest::WRITABLE, || pipe.drain_to(sink, pending)) {
                Ok(n) => pending -= n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return PumpEnd::WriteFailed,
            }
        }
    }
}

/// The unshaped path: one reused buffer, read then write, nothing held. The buffer is small
/// until the source proves to be a bulk sender, then large (see `buffers`).
async fn pump_direct(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    dir: Dir,
    recorder: &Recorder,
    pool: &BufferPool,
) -> PumpEnd {
    let mut buf = RelayBuffer::new(pool);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return PumpEnd::Eof;
            }
            Ok(n) => n,
            Err(_) => return PumpEnd::ReadReset,
        };
        recorder.record(dir, n);
        if to.write_all(&buf[..n]).await.is_err() {
            return PumpEnd::WriteFailed;
        }
        if buf.grow_if_full(n) {
            debug!(?dir, size = buf.len(), "bulk transfer: large relay buffer");
        }
    }
}

/// A chunk on its way through the emulated link.
enum InFlight {
    Data {
        release: Instant,
        /// How long the link took to serialise it.
        serialise: Duration,
        bytes: BytesMut,
        _permit: OwnedSemaphorePermit,
    },
    Eof {
        release: Instant,
    },
    Reset,
}

/// The shaped path: a reader schedules each chunk on the link and queues it (the queue's bytes
/// are bounded, so a stalled receiver stops the reader and TCP pushes back on the sender); a
/// writer sends each chunk at its release time.
async fn pump_shaped(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    dir: Dir,
    recorder: &Recorder,
    shared: &Shared,
) -> PumpEnd {
    let (spec, link) = shared.link(dir);
    let chunk = spec.chunk_bytes();
    // At least four chunks (see `queue_bytes`), so a chunk's permits can always be had.
    let queue = Arc::new(Semaphore::new(spec.queue_bytes()));
    let (tx, mut rx) = mpsc::unbounded_channel::<InFlight>();
    let jitter = !spec.jitter.is_zero();
    let schedule = |bytes: usize| {
        let now = Instant::now();
        let fraction = if jitter { fastrand::f64() } else { 0.0 };
        let slot = link.lock().expect("link lock").schedule(
            now.duration_since(shared.started),
            bytes,
            fraction,
        );
        (shared.started + slot.release, slot.serialise)
    };

    let reader = async {
        loop {
            let Ok(permit) = queue.clone().acquire_many_owned(chunk as u32).await else {
                return;
            };
            let mut bytes = BytesMut::zeroed(chunk);
            match from.read(&mut bytes).await {
                Ok(0) => {
                    let _ = tx.send(InFlight::Eof {
                        release: schedule(0).0,
                    });
                    return;
                }
                Ok(n) => {
                    bytes.truncate(n);
                    let (release, serialise) = schedule(n);
                    let _ = tx.send(InFlight::Data {
                        release,
                        serialise,
                        bytes,
                        _permit: permit,
                    });
                }
                Err(_) => {
                    let _ = tx.send(InFlight::Reset);
                    return;
                }
            }
        }
    };
    let writer = async {
        // When the previous chunk went out. A writer that woke late (a busy machine) must not
        // catch up by sending the chunks that fell due meanwhile back to back, a burst far
        // above the link's rate: it catches up at most CATCH_UP times the rate, each chunk
        // leaving at least its serialisation time / CATCH_UP after the one before. On time, the
        // link's own schedule already spaces chunks by their serialisation time, so this never
        // delays a punctual writer, and the few microseconds a wake-up overshoots by never add
        // up.
        const CATCH_UP: f64 = 1.25;
        let mut previous: Option<Instant> = None;
        while let Some(item) = rx.recv().await {
            match item {
                InFlight::Data {
                    release,
                    serialise,
                    bytes,
                    ..
                } => {
                    let due =
                        previous.map_or(release, |p| release.max(p + serialise.div_f64(CATCH_UP)));
                    sleep_until_precise(due).await;
                    let sent = Instant::now();
                    previous = Some(sent);
                    if to.write_all(&bytes).await.is_err() {
                        return PumpEnd::WriteFailed;
                    }
                    // Counted as it leaves the emulated link, so timelines, peaks and flights
                    // show the shaped traffic the far end sees; at the time the write began,
                    // the same instant the spacing above counts from.
                    recorder.record_at(dir, bytes.len(), sent, serialise);
                }
                InFlight::Eof { release } => {
                    sleep_until_precise(release).await;
                    let _ = to.shutdown().await;
                    return PumpEnd::Eof;
                }
                InFlight::Reset => return PumpEnd::ReadReset,
            }
        }
        PumpEnd::Stopped
    };
    tokio::pin!(reader, writer);
    // The reader may finish first (end of stream); the writer always decides the outcome.
    tokio::select! {
        end = &mut writer => end,
        () = &mut reader => writer.await,
    }
}

/// Sleeps until `deadline` to within a few microseconds. The runtime's timer ticks in whole
/// milliseconds, which would add up to 1 ms to every delayed chunk; so the runtime sleeps the
/// bulk, a blocking thread's `nanosleep` most of the rest, and the last 100 µs are spent
/// yielding.
async fn sleep_until_precise(deadline: Instant) {
    const COARSE: Duration = Duration::from_millis(2);
    const SPIN: Duration = Duration::from_micros(100);
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    if deadline - now > COARSE {
        tokio::time::sleep_until((deadline - COARSE).into()).await;
    }
    let rest = deadline.saturating_duration_since(Instant::now());
    if rest > SPIN {
        let nap = rest - SPIN;
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(nap)).await;
    }
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}
