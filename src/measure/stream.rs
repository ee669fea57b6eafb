//! A throughput test, client side: opens the control connection and one data connection per
//! stream, runs them, samples every stream's counters and TCP_INFO each interval, and gathers the
//! server's own counters at the end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::transfer::connect;
use super::MeasureError;
use crate::os::{self, CpuTime, SocketOptions, TcpInfo};
use crate::wire::data::{self, CounterSnapshot, StreamCounters, StreamPlan};
use crate::wire::{
    Connection, ConnectionError, Message, ServerInterval, StreamRequest, StreamResults,
};

/// How a client connects for a stream test.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

/// One stream's counts over one interval, from the client's side.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInterval {
    pub stream: u16,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// TCP_INFO of the client's socket at the end of the interval, if it sends on it.
    pub tcp_info: Option<TcpInfo>,
}

/// One interval of a stream test.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalSample {
    /// Offsets from the start of the data phase.
    pub start: Duration,
    pub end: Duration,
    /// Inside the `--omit` warm-up.
    pub omitted: bool,
    pub streams: Vec<StreamInterval>,
    /// The server's latest counters (cumulative), with TCP_INFO of its sockets.
    pub server: Option<ServerInterval>,
}

/// One stream's totals, from the client's side.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStream {
    pub stream: u16,
    pub counters: CounterSnapshot,
    pub tcp_info: Option<TcpInfo>,
    pub error: Option<String>,
}

/// Everything a stream test measured.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOutcome {
    pub request: StreamRequest,
    pub server_addr: SocketAddr,
    pub intervals: Vec<IntervalSample>,
    pub streams: Vec<ClientStream>,
    /// From the start of the data phase until the last local stream ended.
    pub elapsed: Duration,
    /// The server's final counters; `None` if it never sent them.
    pub server: Option<StreamResults>,
    /// CPU this process used during the data phase.
    pub cpu: Option<CpuTime>,
    /// The test was stopped early (Ctrl-C).
    pub partial: bool,
}

/// Runs a stream test. Each finished interval is also sent on `live` as it happens.
/// Cancelling `stop` ends the test early; the result is then marked partial.
pub async fn stream_test(
    addrs: &[SocketAddr],
    request: StreamRequest,
    options: &StreamOptions,
    stop: CancellationToken,
    live: Option<mpsc::UnboundedSender<IntervalSample>>,
) -> Result<StreamOutcome, MeasureError> {
    let (stream, addr) = connect(addrs, options.connect_timeout).await?;
    let mut control = Connection::new(stream, options.io_timeout);
    let fail = |phase: &'static str| {
        move |error: ConnectionError| MeasureError::Connection { addr, phase, error }
    };
    control.write_hello().await.map_err(fail("handshake"))?;
    control
        .write_frame(&Message::Request(crate::wire::TestRequest::Stream(
            request.clone(),
        )))
        .await
        .map_err(fail("handshake"))?;
    let cookie = match control.expect_frame().await.map_err(fail("handshake"))? {
        Message::Accepted { cookie, .. } => cookie,
        other => return Err(super::transfer::unexpected(addr, "accepted", other)),
    };

    let mut sockets = Vec::with_capacity(request.streams as usize);
    for index in 0..request.streams {
        let socket = open_stream(addr, &request.socket, options.connect_timeout).await?;
        let mut conn = Connection::new(socket, options.io_timeout);
        conn.write_hello().await.map_err(fail("stream set-up"))?;
        conn.write_frame(&Message::Join {
            cookie,
            stream: index,
        })
        .await
        .map_err(fail("stream set-up"))?;
        let (socket, _) = conn.into_parts();
        os::apply_after_connect(&socket2::SockRef::from(&socket), &request.socket)
            .map_err(MeasureError::SocketOption)?;
        sockets.push(Arc::new(socket));
    }
    match control
        .expect_frame()
        .await
        .map_err(fail("stream set-up"))?
    {
        Message::Start => {}
        other => return Err(super::transfer::unexpected(addr, "start", other)),
    }

    let plan = StreamPlan::for_client(&request, options.io_timeout);
    let local_stop = CancellationToken::new();
    let cpu_start = CpuTime::now();
    let started = Instant::now();
    let counters: Vec<Arc<StreamCounters>> = (0..sockets.len()).map(|_| Arc::default()).collect();
    let mut tasks = JoinSet::new();
    for (i, socket) in sockets.iter().enumerate() {
        data::spawn(
            &mut tasks,
            i as u16,
            socket.clone(),
            counters[i].clone(),
            plan.for_stream(i),
            &plan,
            local_stop.clone(),
        );
    }
    let sends = request.direction.client_sends();
    let interval = Duration::from_millis(request.interval_ms);
    let omit = Duration::from_millis(request.omit_ms);
    let mut sampler = Sampler::new(&counters, sends);
    let mut intervals = Vec::new();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut omitted = omit.is_zero();
    let omit_at = tokio::time::Instant::now() + omit;
    let hard_deadline = tokio::time::Instant::now() + plan.max_runtime();
    let mut errors: Vec<Option<String>> = vec![None; sockets.len()];
    let mut server_latest: Option<ServerInterval> = None;
    let mut server_results: Option<StreamResults> = None;
    let mut partial = false;
    let mut local_elapsed = None;
    let emit = |sample: IntervalSample, intervals: &mut Vec<IntervalSample>| {
        if let Some(live) = &live {
            let _ = live.send(sample.clone());
        }
        intervals.push(sample);
    };

    // When the server sends, an interval waits for the server's report of the same interval
    // (it carries the sender's TCP_INFO), at most until the next tick.
    let wait_for_server = request.direction.server_sends();
    let mut pending: Option<IntervalSample> = None;

    loop {
        if tasks.is_empty() && local_elapsed.is_none() {
            if let Some(p) = pending.take() {
                emit(p, &mut intervals);
            }
            let elapsed = started.elapsed();
            local_elapsed = Some(elapsed);
            // A last partial interval counts if it is at least half an interval long.
            if elapsed.saturating_sub(sampler.last) * 2 >= interval {
                let s = sampler.sample(
                    elapsed,
                    &sockets,
                    is_omitted(elapsed, omit, interval),
                    server_latest.clone(),
                );
                emit(s, &mut intervals);
            }
        }
        if local_elapsed.is_some() && server_results.is_some() {
            break;
        }
        tokio::select! {
            done = tasks.join_next(), if !tasks.is_empty() => {
                if let Some(Ok((index, Err(e)))) = done {
                    errors[index as usize] = Some(e.to_string());
                }
            }
            _ = ticker.tick(), if local_elapsed.is_none() => {
                if let Some(p) = pending.take() {
                    emit(p, &mut intervals);
                }
                let now = started.elapsed();
                let s = sampler.sample(now, &sockets, is_omitted(now, omit, interval), server_latest.clone());
                if wait_for_server {
                    pending = Some(s);
                } else {
                    emit(s, &mut intervals);
                }
            }
            _ = tokio::time::sleep_until(omit_at), if !omitted => {
                omitted = true;
                for c in &counters {
                    c.mark_omitted();
                }
            }
            // Once the results are in, the server's close is expected, not a failure.
            frame = control.read_frame_within(None), if server_results.is_none() => {
                match frame.map_err(fail("test"))? {
                    Some(Message::Interval(i)) => {
                        if let Some(mut p) = pending.take() {
                            p.server = Some(i.clone());
                            emit(p, &mut intervals);
                        }
                        server_latest = Some(i);
                    }
                    Some(Message::StreamResults(r)) => server_results = Some(r),
                    Some(other) => return Err(super::transfer::unexpected(addr, "interval or results", other)),
                    None => {
                        if local_elapsed.is_none() {
                            local_stop.cancel();
                        }
                        // The server closed without results: report what we have.
                        for e in errors.iter_mut().filter(|e| e.is_none()) {
                            *e = Some("the server closed the control connection".into());
                        }
                        tasks.abort_all();
                        local_elapsed.get_or_insert(started.elapsed());
                        break;
                    }
                }
            }
            _ = stop.cancelled(), if !partial => {
                partial = true;
                local_stop.cancel();
                let _ = control.write_frame(&Message::Stop).await;
            }
            _ = tokio::time::sleep_until(hard_deadline) => {
                local_stop.cancel();
                tasks.abort_all();
                for e in errors.iter_mut().filter(|e| e.is_none()) {
                    *e = Some("stopped: the test ran past its time".into());
                }
                local_elapsed.get_or_insert(started.elapsed());
                break;
            }
        }
    }
    if let Some(p) = pending.take() {
        emit(p, &mut intervals);
    }
    let cpu = CpuTime::now()
        .zip(cpu_start)
        .map(|(end, start)| end.since(&start));
    let streams = counters
        .iter()
        .zip(&sockets)
        .zip(errors)
        .enumerate()
        .map(|(i, ((c, socket), error))| ClientStream {
            stream: i as u16,
            counters: c.load(),
            tcp_info: os::tcp_info(&**socket),
            error,
        })
        .collect();
    Ok(StreamOutcome {
        request,
        server_addr: addr,
        intervals,
        streams,
        elapsed: local_elapsed.unwrap_or_else(|| started.elapsed()),
        server: server_results,
        cpu,
        partial,
    })
}

/// An interval ending at `end` is warm-up if it ends (give or take timer lateness) by `omit`.
fn is_omitted(end: Duration, omit: Duration, interval: Duration) -> bool {
    !omit.is_zero() && end < omit + interval / 2
}

/// Opens a data connection with the options that must be set before connecting.
async fn open_stream(
    addr: SocketAddr,
    options: &SocketOptions,
    timeout: Duration,
) -> Result<TcpStream, MeasureError> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|error| MeasureError::Connect { addr, error })?;
    os::apply_before_connect(&socket2::SockRef::from(&socket), options)
        .map_err(MeasureError::SocketOption)?;
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(MeasureError::Connect { addr, error }),
        Err(_) => Err(MeasureError::ConnectTimeout { addr, timeout }),
    }
}

/// Turns cumulative counters into per-interval deltas.
struct Sampler<'a> {
    counters: &'a [Arc<StreamCounters>],
    previous: Vec<CounterSnapshot>,
    last: Duration,
    sends: bool,
}

impl<'a> Sampler<'a> {
    fn new(counters: &'a [Arc<StreamCounters>], sends: bool) -> Self {
        Sampler {
            counters,
            previous: vec![CounterSnapshot::default(); counters.len()],
            last: Duration::ZERO,
            sends,
        }
    }

    fn sample(
        &mut self,
        now: Duration,
        sockets: &[Arc<TcpStream>],
        omitted: bool,
        server: Option<ServerInterval>,
    ) -> IntervalSample {
        let streams = self
            .counters
            .iter()
            .zip(&mut self.previous)
            .zip(sockets)
            .enumerate()
            .map(|(i, ((c, prev), socket))| {
                let cur = c.load();
                let s = StreamInterval {
                    stream: i as u16,
                    bytes_sent: cur.sent - prev.sent,
                    bytes_received: cur.received - prev.received,
                    tcp_info: if self.sends {
                        os::tcp_info(&**socket)
                    } else {
                        None
                    },
                };
                *prev = cur;
                s
            })
            .collect();
        let sample = IntervalSample {
            start: self.last,
            end: now,
            omitted,
            streams,
            server,
        };
        self.last = now;
        sample
    }
}
