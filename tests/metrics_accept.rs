//! The metrics endpoint when accept fails (EMFILE): it pauses and retries instead of spinning.
//! Its own test binary, because it lowers the process's descriptor limit.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut u), 0);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn set_fd_limit(soft: libc::rlim_t) -> libc::rlim_t {
    // SAFETY: getrlimit/setrlimit on structs owned here.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let before = limit.rlim_cur;
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        before
    }
}

/// With no descriptor left, every accept fails at once with EMFILE: the loop used to retry
/// without pause, burning a core. It must sleep between tries, then serve once descriptors are
/// back.
#[test]
fn accept_errors_do_not_spin() {
    use std::os::fd::AsRawFd;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = CancellationToken::new();
    let (addr, server) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(|| "up 1\n".to_string());
        let server = tokio::spawn(ntm::http::serve_metrics(listener, render, shutdown.clone()));
        (addr, server)
    });
    // The client's descriptor is taken before the limit drops; connecting needs no new one.
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let lowest_free = std::fs::File::open("/dev/null").unwrap().as_raw_fd();
    let before = set_fd_limit(lowest_free as libc::rlim_t);
    client.connect(&addr.into()).unwrap();

    let (cpu, wall) = (cpu_time(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time() - cpu, wall.elapsed());
    set_fd_limit(before);
    // A spinning loop takes most of a core even on a busy machine; ten tries a second, almost
    // nothing.
    assert!(
        cpu < Duration::from_millis(200),
        "{cpu:?} of CPU in {wall:?} while accept failed"
    );

    // Descriptors are back: the queued connection is accepted and answered.
    let mut client: std::net::TcpStream = client.into();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
    assert!(response.ends_with("up 1\n"), "{response:?}");

    shutdown.cancel();
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await })
        .expect("the endpoint stops on shutdown")
        .unwrap();
}
