//! ntm measures how a network performs between two endpoints, and what Multi-Party Computation
//! protocols such as TLSNotary cost on it: bytes, round trips, time.
//!
//! Data flows one way: sockets -> samples -> stats -> report.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`cli`] | clap definitions; raw arguments become validated configs; runs commands |
//! | [`wire`] | the control protocol: frames as pure bytes, and a time-limited [`wire::Connection`] |
//! | [`server`] | the measurement server: accepts, admits within limits, runs tests, shuts down |
//! | [`measure`] | the client side of tests; returns samples |
//! | [`mpc`] | MPC cost models; pure |
//! | [`http`] | the one HTTP endpoint: `GET /metrics` for Prometheus |
//! | [`listener`] | the accept step every accept loop shares: pause on errors, stop on shutdown |
//! | [`monitor`] | traffic of existing processes from the kernel's socket counters (`top`, `exec`) |
//! | [`proxy`] | the measuring and shaping TCP proxy: counts, flights, emulated links |
//! | [`os`] | TCP_INFO, CPU time and socket options behind one facade |
//! | [`stats`] | summaries of repeated measurements; pure |
//! | [`report`] | text and JSON output to any `impl Write`; unit parsing and formatting |
//!
//! The library never binds ports it was not given, never installs signal handlers and never
//! prints: entry points take listeners, configs and a [`tokio_util::sync::CancellationToken`].

pub mod cli;
pub mod http;
pub mod listener;
pub mod measure;
pub mod monitor;
pub mod mpc;
pub mod os;
pub mod proxy;
pub mod report;
pub mod server;
pub mod stats;
pub mod wire;
