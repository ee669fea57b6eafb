//! The transfer test, server side: receive the upload and confirm it, send the response on
//! `fetch`, then the counters.

use std::time::Instant;

use super::session::{unexpected, SessionError, TestTotals};
use crate::wire::{Connection, ConnectionError, Message, ServerCounters};

pub(super) async fn run(
    conn: &mut Connection,
    upload: u64,
    download: u64,
    buffer_size: usize,
) -> Result<TestTotals, SessionError> {
    // One buffer per test, reused for every read and write: memory is fixed however large the
    // test. Its contents are arbitrary; filling it once keeps the pages resident.
    let mut buf = vec![0x5au8; buffer_size.max(1)];

    let upload_started = Instant::now();
    let bytes_received = conn.read_data(upload, &mut buf).await?;
    let upload_time = upload_started.elapsed();
    if bytes_received < upload {
        return Err(ConnectionError::Closed.into());
    }
    conn.write_frame(&Message::UploadComplete {
        bytes_received,
        seconds: upload_time.as_secs_f64(),
    })
    .await?;

    match conn.expect_frame().await? {
        Message::Fetch => {}
        other => return Err(unexpected("fetch", &other)),
    }
    let download_started = Instant::now();
    conn.write_data(download, &buf).await?;
    let download_time = download_started.elapsed();

    let counters = ServerCounters {
        bytes_received,
        bytes_sent: download,
        upload_seconds: upload_time.as_secs_f64(),
        download_seconds: download_time.as_secs_f64(),
    };
    conn.write_frame(&Message::Counters(counters)).await?;
    conn.shutdown().await?;
    Ok(TestTotals {
        bytes_received,
        bytes_sent: download,
    })
}
