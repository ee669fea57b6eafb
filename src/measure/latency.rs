//! Latency tests, client side: request/response over one connection (netperf TCP_RR, sockperf
//! ping-pong), optionally with several transactions in flight, or a new connection per
//! transaction (TCP_CRR). The client uses blocking sockets on dedicated threads: a ping-pong
//! has nothing else to do while it waits, and a blocked `recv` wakes faster than a reactor.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::MeasureError;
use crate::wire::frame::{self, Message, TestRequest, HEADER_LEN};
use crate::wire::ConnectionError;

/// When a latency test ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyLimit {
    /// This many measured transactions (after the warm-up).
    Count(u64),
    /// Measure for this long (after the warm-up).
    Duration(Duration),
}

/// What a latency test does.
#[derive(Debug, Clone)]
pub struct LatencyConfig {
    pub request_bytes: u32,
    pub response_bytes: u32,
    pub limit: LatencyLimit,
    /// Transactions in flight: pipelined on one connection, or parallel connections with
    /// `connect_per_transaction`.
    pub concurrency: u32,
    /// A new connection per transaction (TCP_CRR).
    pub connect_per_transaction: bool,
    /// Transactions run first and left out of the figures.
    pub warmup: u64,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

/// What a latency test measured.
#[derive(Debug, Clone)]
pub struct LatencyOutcome {
    /// Full round-trip times, nanoseconds.
    pub rtt_ns: Histogram<u64>,
    /// From the first measured transaction to the last.
    pub elapsed: Duration,
    /// Transactions the server says it answered (request/response mode only).
    pub server_transactions: Option<u64>,
    /// Stopped early (Ctrl-C).
    pub partial: bool,
}

impl LatencyOutcome {
    pub fn transactions(&self) -> u64 {
        self.rtt_ns.len()
    }

    pub fn transactions_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.transactions() as f64 / s
        } else {
            0.0
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 100 s at 3 significant figures: a few hundred KB, allocated once.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn io_error(addr: SocketAddr, phase: &'static str, error: io::Error) -> MeasureError {
    let error = match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            ConnectionError::Idle(Duration::ZERO)
        }
        io::ErrorKind::UnexpectedEof => ConnectionError::Closed,
        _ => ConnectionError::Io(error),
    };
    MeasureError::Connection { addr, phase, error }
}

/// Runs a latency test on blocking threads. `stop` ends it early.
pub async fn latency_test(
    addrs: Vec<SocketAddr>,
    config: LatencyConfig,
    stop: Arc<AtomicBool>,
) -> Result<LatencyOutcome, MeasureError> {
    tokio::task::spawn_blocking(move || run_blocking(&addrs, &config, &stop))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn run_blocking(
    addrs: &[SocketAddr],
    config: &LatencyConfig,
    stop: &AtomicBool,
) -> Result<LatencyOutcome, MeasureError> {
    if !config.connect_per_transaction {
        return request_response(addrs, config, stop);
    }
    // Parallel connect/request/close loops, one thread each; histograms merge at the end.
    let threads = config.concurrency.max(1);
    let per_thread = |i: u32| match config.limit {
        LatencyLimit::Count(n) => {
            let t = threads as u64;
            LatencyLimit::Count(n / t + u64::from((i as u64) < n % t))
        }
        d => d,
    };
    let results: Vec<Result<LatencyOutcome, MeasureError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let mut c = config.clone();
                c.limit = per_thread(i);
                let t = threads as u64;
                c.warmup = config.warmup / t + u64::from((i as u64) < config.warmup % t);
                scope.spawn(move || connect_request_close(addrs, &c, stop))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut merged: Option<LatencyOutcome> = None;
    for r in results {
        let r = r?;
        match &mut merged {
            None => merged = Some(r),
            Some(m) => {
                m.rtt_ns.add(&r.rtt_ns).expect("same histogram bounds");
                m.elapsed = m.elapsed.max(r.elapsed);
                m.partial |= r.partial;
            }
        }
    }
    Ok(merged.expect("at least one thread"))
}

fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), MeasureError> {
    let mut last = None;
    for &addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok((s, addr)),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = Some(MeasureError::ConnectTimeout { addr, timeout })
            }
            Err(error) => last = Some(MeasureError::Connect { addr, error }),
        }
    }
    Err(last.unwrap_or(MeasureError::NoAddress {
        addr: String::new(),
    }))
}

/// The hello and the test request, as one buffer so they leave in one segment.
fn handshake_bytes(config: &LatencyConfig) -> Vec<u8> {
    let mut out = frame::encode_hello().to_vec();
    out.extend(frame::encode(&Message::Request(TestRequest::Latency {
        request_bytes: config.request_bytes,
        response_bytes: config.response_bytes,
        connect_per_transaction: config.connect_per_transaction,
    })));
    out
}

/// Reads one frame from a blocking stream.
fn read_frame(stream: &mut TcpStream, addr: SocketAddr) -> Result<Message, MeasureError> {
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .map_err(|e| io_error(addr, "handshake", e))?;
    let len = frame::parse_header(header).map_err(|e| MeasureError::Connection {
        addr,
        phase: "handshake",
        error: e.into(),
    })?;
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .map_err(|e| io_error(addr, "handshake", e))?;
    frame::parse_body(&body).map_err(|e| MeasureError::Connection {
        addr,
        phase: "handshake",
        error: e.into(),
    })
}

fn expect_accepted(stream: &mut TcpStream, addr: SocketAddr) -> Result<(), MeasureError> {
    match read_frame(stream, addr)? {
        Message::Accepted { .. } => Ok(()),
        Message::Error { code, message } => Err(MeasureError::Refused {
            addr,
            code,
            message,
        }),
        other => Err(MeasureError::Protocol {
            addr,
            expected: "accepted",
            got: format!("{other:?}"),
        }),
    }
}

fn configure(stream: &TcpStream, config: &LatencyConfig) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(config.io_timeout))?;
    stream.set_write_timeout(Some(config.io_timeout))
}

/// Whether the test should go on after `done` measured transactions, started at `start`.
fn more(limit: LatencyLimit, done: u64, start: Instant) -> bool {
    match limit {
        LatencyLimit::Count(n) => done < n,
        LatencyLimit::Duration(d) => start.elapsed() < d,
    }
}

fn request_response(
    addrs: &[SocketAddr],
    config: &LatencyConfig,
    stop: &AtomicBool,
) -> Result<LatencyOutcome, MeasureError> {
    let (mut stream, addr) = connect(addrs, config.connect_timeout)?;
    configure(&stream, config).map_err(|e| io_error(addr, "handshake", e))?;
    stream
        .write_all(&handshake_bytes(config))
        .map_err(|e| io_error(addr, "handshake", e))?;
    expect_accepted(&mut stream, addr)?;

    let request = vec![0x42u8; config.request_bytes as usize];
    let mut response = vec![0u8; config.response_bytes as usize];
    let mut rtt = new_histogram();
    let depth = config.concurrency.max(1) as usize;
    // Send times of the requests in flight, oldest first.
    let sent_at = Arc::new(std::sync::Mutex::new(
        std::collections::VecDeque::with_capacity(depth),
    ));
    // With several requests in flight, a writer thread sends them, so a large request that fills
    // the socket buffers never blocks the reading of responses (which would deadlock with a
    // server blocked writing its answer). One in flight needs no second thread.
    let writer = (depth > 1)
        .then(|| -> io::Result<_> {
            let mut out = stream.try_clone()?;
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let (times, request) = (sent_at.clone(), request.clone());
            let handle = std::thread::spawn(move || -> io::Result<()> {
                for () in rx {
                    times
                        .lock()
                        .expect("send times lock")
                        .push_back(Instant::now());
                    out.write_all(&request)?;
                }
                Ok(())
            });
            Ok((tx, handle))
        })
        .transpose()
        .map_err(|e| io_error(addr, "test", e))?;
    let send = |stream: &mut TcpStream| -> io::Result<()> {
        match &writer {
            Some((tx, _)) => tx
                .send(())
                .map_err(|_| io::Error::other("the writer thread stopped")),
            None => {
                sent_at
                    .lock()
                    .expect("send times lock")
                    .push_back(Instant::now());
                stream.write_all(&request)
            }
        }
    };
    let mut in_flight = 0usize;
    let mut warm = config.warmup;
    let mut start = Instant::now();
    let mut measured = 0u64;
    let mut partial = false;
    // Another request is wanted while warm-up requests are unsent, or while the measured ones
    // sent so far fall short of the limit.
    let wanted = |measured: u64, in_flight: usize, start: Instant, warm: u64| {
        let in_flight = in_flight as u64;
        warm > in_flight
            || more(
                config.limit,
                measured + in_flight.saturating_sub(warm),
                start,
            )
    };
    while in_flight < depth && wanted(measured, in_flight, start, warm) {
        send(&mut stream).map_err(|e| io_error(addr, "test", e))?;
        in_flight += 1;
    }
    while in_flight > 0 {
        stream
            .read_exact(&mut response)
            .map_err(|e| io_error(addr, "test", e))?;
        let now = Instant::now();
        in_flight -= 1;
        let sent = sent_at
            .lock()
            .expect("send times lock")
            .pop_front()
            .unwrap_or(now);
        if warm > 0 {
            warm -= 1;
            if warm == 0 {
                start = now;
            }
        } else {
            rtt.saturating_record(now.duration_since(sent).as_nanos().max(1) as u64);
            measured += 1;
        }
        if stop.load(Ordering::Relaxed) {
            partial = true;
            continue;
        }
        if wanted(measured, in_flight, start, warm) {
            send(&mut stream).map_err(|e| io_error(addr, "test", e))?;
            in_flight += 1;
        }
    }
    if let Some((tx, handle)) = writer {
        drop(tx);
        handle
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
            .map_err(|e| io_error(addr, "test", e))?;
    }
    let elapsed = start.elapsed();
    // Closing our side ends the test; the server answers with its own count.
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| io_error(addr, "results", e))?;
    let server_transactions = match read_frame(&mut stream, addr)? {
        Message::LatencyResults { transactions } => Some(transactions),
        _ => None,
    };
    Ok(LatencyOutcome {
        rtt_ns: rtt,
        elapsed,
        server_transactions,
        partial,
    })
}

fn connect_request_close(
    addrs: &[SocketAddr],
    config: &LatencyConfig,
    stop: &AtomicBool,
) -> Result<LatencyOutcome, MeasureError> {
    let handshake = handshake_bytes(config);
    let mut message = handshake.clone();
    message.extend(std::iter::repeat_n(0x42u8, config.request_bytes as usize));
    let mut response = vec![0u8; config.response_bytes as usize];
    let mut rtt = new_histogram();
    let mut warm = config.warmup;
    let mut start = Instant::now();
    let mut partial = false;
    while warm > 0 || more(config.limit, rtt.len(), start) {
        if stop.load(Ordering::Relaxed) {
            partial = true;
            break;
        }
        let began = Instant::now();
        let (mut stream, addr) = connect(addrs, config.connect_timeout)?;
        configure(&stream, config).map_err(|e| io_error(addr, "handshake", e))?;
        stream
            .write_all(&message)
            .map_err(|e| io_error(addr, "test", e))?;
        expect_accepted(&mut stream, addr)?;
        stream
            .read_exact(&mut response)
            .map_err(|e| io_error(addr, "test", e))?;
        let took = began.elapsed();
        drop(stream);
        if warm > 0 {
            warm -= 1;
            if warm == 0 {
                start = Instant::now();
            }
        } else {
            rtt.saturating_record(took.as_nanos().max(1) as u64);
        }
    }
    Ok(LatencyOutcome {
        rtt_ns: rtt,
        elapsed: start.elapsed(),
        server_transactions: None,
        partial,
    })
}
