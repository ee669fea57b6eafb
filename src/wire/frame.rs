//! Control frames as pure bytes <-> types: no sockets here, so the parser is tested without any.
//!
//! Layout on the wire (all integers big-endian):
//!
//! ```text
//! hello   = MAGIC (4 bytes "NTM\0") VERSION (u16)          sent once by the client
//! frame   = LENGTH (u32) BODY (LENGTH bytes of JSON)        every control message
//! ```
//!
//! The length is checked against [`MAX_FRAME_LEN`] before anything is allocated. Bodies are JSON
//! objects tagged by `"type"`, so a frame is readable in a packet capture and new fields can be
//! added without breaking older peers. Bulk test data is never framed: it flows raw between the
//! frames that delimit it, with the byte counts agreed in the request.

use serde::{Deserialize, Serialize};

use crate::os::{SocketOptions, TcpInfo};

/// First bytes a client sends; anything else is not an ntm client.
pub const MAGIC: [u8; 4] = *b"NTM\0";
/// Protocol version this build speaks.
pub const VERSION: u16 = 1;
/// Length of the hello (magic + version).
pub const HELLO_LEN: usize = 6;
/// Largest control frame body accepted, checked before allocating.
pub const MAX_FRAME_LEN: usize = 64 * 1024;
/// Length of the frame header (the body length).
pub const HEADER_LEN: usize = 4;

/// A control message, in either direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Client -> server: run this test.
    Request(TestRequest),
    /// Server -> client: the test is admitted and has this id. Extra data connections of a
    /// stream test join it with `cookie`, a random number only this client knows.
    Accepted {
        test_id: u64,
        #[serde(default)]
        cookie: u64,
    },
    /// Client -> server, first frame of an extra data connection: attach to a stream test.
    Join { cookie: u64, stream: u16 },
    /// Server -> client: every stream has joined; the data phase starts now.
    Start,
    /// Client -> server: end the test now (Ctrl-C); the server still sends its results.
    Stop,
    /// Server -> client, each interval of a stream test: the server's counters of the streams.
    Interval(ServerInterval),
    /// Server -> client, at the end of a stream test: the server's final counters.
    StreamResults(StreamResults),
    /// Server -> client, at the end of a latency test: transactions the server answered.
    LatencyResults { transactions: u64 },
    /// Server -> client, at the end of a replay: what the server counted in each phase.
    ReplayResults { phases: Vec<ReplayCounts> },
    /// Server -> client: the upload phase is complete; the server counted this many bytes.
    UploadComplete { bytes_received: u64, seconds: f64 },
    /// Client -> server: send the response now (starts the download phase).
    Fetch,
    /// Server -> client: the server's own counters for the whole test.
    Counters(ServerCounters),
    /// Either way: the test cannot go on; the sender closes the connection after it.
    Error { code: ErrorCode, message: String },
}

/// What a client asks the server to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TestRequest {
    /// Receive `upload_bytes` from the client, confirm them, then on [`Message::Fetch`] send
    /// `download_bytes` back.
    Transfer {
        upload_bytes: u64,
        download_bytes: u64,
    },
    /// Move data over `streams` extra connections for a duration or a byte count.
    Stream(StreamRequest),
    /// Play a protocol's traffic pattern: phase by phase, exchanges of bytes up then bytes down.
    Replay(ReplayScript),
    /// Answer every `request_bytes` received on this connection with `response_bytes`, until
    /// the client closes its side (netperf TCP_RR; one transaction per connection is TCP_CRR).
    Latency {
        request_bytes: u32,
        response_bytes: u32,
        /// One transaction per connection (TCP_CRR): the server logs these at debug level.
        #[serde(default)]
        connect_per_transaction: bool,
    },
}

/// A traffic pattern to replay: the phases of an MPC protocol, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayScript {
    pub phases: Vec<ReplayPhase>,
}

/// One phase of a replay: `round_trips` exchanges, each the client's share of `upload_bytes`
/// followed by the server's share of `download_bytes`, then `compute_ms` of idle time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPhase {
    pub name: String,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    pub round_trips: u32,
    #[serde(default)]
    pub compute_ms: u64,
}

impl ReplayPhase {
    /// The exchanges both ends play, as (bytes up, bytes down). Bytes split evenly, the first
    /// exchanges taking the remainder; every exchange carries at least one byte each way, so each
    /// is a real ping-pong; a phase with bytes but no round trips gets one.
    pub fn exchanges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let moves_data = self.upload_bytes > 0 || self.download_bytes > 0;
        let n = if self.round_trips == 0 && moves_data {
            1
        } else {
            self.round_trips as u64
        };
        let share = move |total: u64, i: u64| {
            let extra = u64::from(i < total % n.max(1));
            (total / n.max(1) + extra).max(1)
        };
        (0..n).map(move |i| (share(self.upload_bytes, i), share(self.download_bytes, i)))
    }
}

/// What the server counted in one phase of a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayCounts {
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub exchanges: u64,
}

/// Which way a stream test's data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client sends (iperf3's default).
    Upload,
    /// Server sends (`--reverse`).
    Download,
    /// Both at once (`--bidir`).
    Bidir,
}

impl Direction {
    pub fn client_sends(self) -> bool {
        matches!(self, Direction::Upload | Direction::Bidir)
    }

    pub fn server_sends(self) -> bool {
        matches!(self, Direction::Download | Direction::Bidir)
    }
}

/// When a stream test ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Each sender sends for this long (plus the omitted warm-up).
    DurationMs(u64),
    /// The senders of each direction send this many bytes in total, split over the streams.
    Bytes(u64),
}

/// A throughput test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRequest {
    /// Number of parallel data connections.
    pub streams: u16,
    pub direction: Direction,
    pub limit: Limit,
    /// How often the server reports its counters, milliseconds.
    pub interval_ms: u64,
    /// Warm-up excluded from the totals, milliseconds.
    #[serde(default)]
    pub omit_ms: u64,
    /// Send buffer size of each write, bytes.
    pub block_bytes: u32,
    #[serde(default)]
    pub socket: SocketOptions,
}

/// One stream's counters as the server saw them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStream {
    pub stream: u16,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Bytes counted during the omitted warm-up, to subtract from the totals.
    #[serde(default)]
    pub omitted_bytes_received: u64,
    #[serde(default)]
    pub omitted_bytes_sent: u64,
    /// TCP_INFO of the server's socket, where the platform has it.
    #[serde(default)]
    pub tcp_info: Option<TcpInfo>,
    /// Why the stream broke, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The server's counters at one interval of a stream test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInterval {
    /// Seconds since the data phase started.
    pub seconds: f64,
    pub streams: Vec<ServerStream>,
}

/// The server's final counters of a stream test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamResults {
    /// Seconds from the start of the data phase until the last stream ended.
    pub seconds: f64,
    pub streams: Vec<ServerStream>,
    /// CPU the server process used during the test, user and system seconds, if known.
    pub cpu_user_seconds: Option<f64>,
    pub cpu_system_seconds: Option<f64>,
}

impl TestRequest {
    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TestRequest::Transfer { .. } => "transfer",
            TestRequest::Stream(_) => "stream",
            TestRequest::Latency { .. } => "latency",
            TestRequest::Replay(_) => "replay",
        }
    }
}

/// What the server counted, so the client can report both sides, as iperf3 does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerCounters {
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub upload_seconds: f64,
    pub download_seconds: f64,
}

/// Why a test was refused or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The server runs as many tests as it allows; try again later.
    Busy,
    /// The request could not be understood.
    BadRequest,
    /// The request asks for more than the server allows.
    LimitExceeded,
    /// The client is not allowed to run tests here.
    Unauthorized,
    /// The hello did not start with [`MAGIC`].
    BadMagic,
    /// The client speaks a protocol version this server does not.
    UnsupportedVersion,
    /// A frame was longer than [`MAX_FRAME_LEN`].
    FrameTooLarge,
    /// The peer stalled longer than the idle timeout.
    Timeout,
    /// The server is shutting down.
    ShuttingDown,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ErrorCode::Busy => "busy",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::BadMagic => "bad magic",
            ErrorCode::UnsupportedVersion => "unsupported version",
            ErrorCode::FrameTooLarge => "frame too large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ShuttingDown => "shutting down",
        };
        f.write_str(s)
    }
}

/// Why bytes could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic {0:02x?}: not an ntm client")]
    BadMagic([u8; 4]),
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u16),
    #[error("frame of {0} bytes is over the maximum of {MAX_FRAME_LEN}")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl FrameError {
    /// The error code to send back to the peer that caused this.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::BadMagic(_) => ErrorCode::BadMagic,
            FrameError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            FrameError::TooLarge(_) => ErrorCode::FrameTooLarge,
            FrameError::Malformed(_) => ErrorCode::BadRequest,
        }
    }
}

/// The hello a client sends first.
pub fn encode_hello() -> [u8; HELLO_LEN] {
    let mut out = [0u8; HELLO_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4..].copy_from_slice(&VERSION.to_be_bytes());
    out
}

/// Checks a hello; `bytes` must be exactly [`HELLO_LEN`] long.
pub fn parse_hello(bytes: &[u8; HELLO_LEN]) -> Result<u16, FrameError> {
    let magic: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    Ok(version)
}

/// Encodes a message as one frame (header + body).
pub fn encode(message: &Message) -> Vec<u8> {
    // Serializing these types cannot fail: no maps with non-string keys, no custom impls.
    let body = serde_json::to_vec(message).expect("control messages always serialize");
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads a frame header and checks the body length before anything is allocated.
pub fn parse_header(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Parses a frame body.
pub fn parse_body(body: &[u8]) -> Result<Message, FrameError> {
    serde_json::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Parses one whole frame from the front of `buf`: `Ok(None)` if more bytes are needed,
/// otherwise the message and how many bytes it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Message, usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = parse_header(header.try_into().expect("slice of HEADER_LEN"))?;
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((parse_body(body)?, HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_code() -> impl Strategy<Value = ErrorCode> {
        prop_oneof![
            Just(ErrorCode::Busy),
            Just(ErrorCode::BadRequest),
            Just(ErrorCode::LimitExceeded),
            Just(ErrorCode::Unauthorized),
            Just(ErrorCode::BadMagic),
            Just(ErrorCode::UnsupportedVersion),
            Just(ErrorCode::FrameTooLarge),
            Just(ErrorCode::Timeout),
            Just(ErrorCode::ShuttingDown),
        ]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        // Finite floats only: JSON has no NaN or infinity, and counters never hold them.
        let secs = 0.0f64..1e9;
        prop_oneof![
            (any::<u64>(), any::<u64>()).prop_map(|(u, d)| Message::Request(
                TestRequest::Transfer {
                    upload_bytes: u,
                    download_bytes: d
                }
            )),
            (any::<u64>(), any::<u64>())
                .prop_map(|(test_id, cookie)| Message::Accepted { test_id, cookie }),
            (any::<u64>(), any::<u16>())
                .prop_map(|(cookie, stream)| Message::Join { cookie, stream }),
            Just(Message::Start),
            Just(Message::Stop),
            (any::<u32>(), any::<u32>(), any::<bool>()).prop_map(|(q, r, c)| Message::Request(
                TestRequest::Latency {
                    request_bytes: q,
                    response_bytes: r,
                    connect_per_transaction: c,
                }
            )),
            (
                1u16..200,
                any::<u64>(),
                any::<bool>(),
                proptest::option::of(any::<u32>())
            )
                .prop_map(|(streams, n, by_bytes, window)| Message::Request(
                    TestRequest::Stream(StreamRequest {
                        streams,
                        direction: Direction::Bidir,
                        limit: if by_bytes {
                            Limit::Bytes(n)
                        } else {
                            Limit::DurationMs(n)
                        },
                        interval_ms: 1000,
                        omit_ms: 0,
                        block_bytes: 131072,
                        socket: SocketOptions {
                            window,
                            congestion: Some("cubic".into()),
                            ..SocketOptions::default()
                        },
                    })
                )),
            (any::<u64>(), secs.clone()).prop_map(|(bytes_received, seconds)| {
                Message::UploadComplete {
                    bytes_received,
                    seconds,
                }
            }),
            Just(Message::Fetch),
            (any::<u64>(), any::<u64>(), secs.clone(), secs).prop_map(|(r, s, u, d)| {
                Message::Counters(ServerCounters {
                    bytes_received: r,
                    bytes_sent: s,
                    upload_seconds: u,
                    download_seconds: d,
                })
            }),
            (arb_code(), ".{0,200}").prop_map(|(code, message)| Message::Error { code, message }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(message in arb_message()) {
            let bytes = encode(&message);
            let (parsed, used) = parse(&bytes).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(parsed, message);
        }

        #[test]
        fn every_prefix_asks_for_more(message in arb_message()) {
            let bytes = encode(&message);
            for cut in 0..bytes.len() {
                prop_assert_eq!(parse(&bytes[..cut]), Ok(None));
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
            if let Ok(hello) = <[u8; HELLO_LEN]>::try_from(bytes.get(..HELLO_LEN).unwrap_or(&[])) {
                let _ = parse_hello(&hello);
            }
        }

        #[test]
        fn garbage_bodies_are_malformed_not_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse_body(&body) {
                prop_assert_eq!(e.code(), ErrorCode::BadRequest);
            }
        }
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let header = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
        assert_eq!(parse(&header), Err(FrameError::TooLarge(MAX_FRAME_LEN + 1)));
        assert_eq!(
            parse_header(u32::MAX.to_be_bytes()),
            Err(FrameError::TooLarge(u32::MAX as usize))
        );
        assert_eq!(
            parse_header((MAX_FRAME_LEN as u32).to_be_bytes()),
            Ok(MAX_FRAME_LEN)
        );
    }

    #[test]
    fn hello_checks_magic_and_version() {
        assert_eq!(parse_hello(&encode_hello()), Ok(VERSION));
        assert_eq!(parse_hello(b"GET / "), Err(FrameError::BadMagic(*b"GET ")));
        let mut future = encode_hello();
        future[4..].copy_from_slice(&99u16.to_be_bytes());
        assert_eq!(
            parse_hello(&future),
            Err(FrameError::UnsupportedVersion(99))
        );
    }

    #[test]
    fn body_is_tagged_json() {
        let bytes = encode(&Message::Request(TestRequest::Transfer {
            upload_bytes: 1024,
            download_bytes: 512,
        }));
        let body = std::str::from_utf8(&bytes[HEADER_LEN..]).unwrap();
        assert_eq!(
            body,
            r#"{"type":"request","kind":"transfer","upload_bytes":1024,"download_bytes":512}"#
        );
    }

    #[test]
    fn replay_exchanges_split_bytes_exactly() {
        let phase = ReplayPhase {
            name: "online".into(),
            upload_bytes: 10,
            download_bytes: 1000,
            round_trips: 3,
            compute_ms: 0,
        };
        let ex: Vec<_> = phase.exchanges().collect();
        assert_eq!(ex, vec![(4, 334), (3, 333), (3, 333)]);
        let tiny = ReplayPhase {
            upload_bytes: 1,
            round_trips: 3,
            ..phase.clone()
        };
        assert_eq!(
            tiny.exchanges().map(|e| e.0).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
        let no_rounds = ReplayPhase {
            round_trips: 0,
            ..phase.clone()
        };
        assert_eq!(no_rounds.exchanges().count(), 1);
        let idle = ReplayPhase {
            upload_bytes: 0,
            download_bytes: 0,
            round_trips: 0,
            ..phase
        };
        assert_eq!(idle.exchanges().count(), 0);
    }

    #[test]
    fn unknown_type_is_bad_request() {
        let err = parse_body(br#"{"type":"launch_missiles"}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }
}
