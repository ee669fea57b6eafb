//! The control protocol between an ntm client and server: frames as pure bytes
//! ([`frame`]) and a buffered, time-limited [`Connection`] that carries them.

pub mod connection;
pub mod data;
pub mod frame;

pub use connection::{Connection, ConnectionError};
pub use frame::{
    Direction, ErrorCode, FrameError, Limit, Message, ReplayCounts, ReplayPhase, ReplayScript,
    ServerCounters, ServerInterval, ServerStream, StreamRequest, StreamResults, TestRequest,
};
