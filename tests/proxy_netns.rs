//! Kernel cross-check of the proxy's rate shaping (issue 4): two network namespaces joined by a
//! veth pair, a server in one, uploads from the other. Every upload crosses the same veth: once
//! unshaped (a baseline, far above the rate), once through `ntm proxy --rate-up` in the sending
//! namespace, once through the kernel's `tbf` on the sender's end of the veth. The two shaped
//! rates must match the configured rate and each other. Needs root and iproute2 (CI runs as root
//! and installs iproute2): without them the test says it is skipped and passes, unless
//! `NTM_REQUIRE_NETNS=1`, which makes it fail instead (.ci/run sets it where it can).
//!
//! It touches no network but its own: two namespaces named after this process, a veth pair
//! between them with addresses in 10.213.X.0/24, and the namespaces' loopbacks. Everything is
//! removed by a guard, also when the test fails.
//!
//! Linux only: network namespaces, veth and `tbf` are Linux's.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::ChildGuard;

/// The rate both links are set to.
const RATE_BPS: f64 = 20e6;
/// How far each measurement may be from the rate, and from each other.
const TOLERANCE: f64 = 0.10;

/// Prefix of everything this test creates, so a run killed before cleaning up can be recognised.
const PREFIX: &str = "ntmtest";

/// Set to `1` to make a machine that cannot run the test fail it rather than skip it.
const REQUIRE: &str = "NTM_REQUIRE_NETNS";

/// Runs `ip`/`tc` with `args`; the error carries the command and what it printed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Two network namespaces joined by a veth pair; deleted when dropped (deleting a namespace
/// deletes its end of the pair, and the pair with it).
struct Namespaces {
    sender: String,
    receiver: String,
    /// The sender's end of the veth pair (the one the tbf shapes).
    sender_dev: String,
    sender_ip: String,
    receiver_ip: String,
}

impl Namespaces {
    fn create() -> Result<Namespaces, String> {
        let pid = std::process::id();
        let subnet = pid % 250 + 1;
        let ns = Namespaces {
            sender: format!("{PREFIX}-a-{pid}"),
            receiver: format!("{PREFIX}-b-{pid}"),
            sender_dev: format!("ntmva{pid}"),
            sender_ip: format!("10.213.{subnet}.1"),
            receiver_ip: format!("10.213.{subnet}.2"),
        };
        // From here on the guard owns whatever was created, even if a later step fails.
        run("ip", &["netns", "add", &ns.sender])?;
        run("ip", &["netns", "add", &ns.receiver])?;
        let receiver_dev = format!("ntmvb{pid}");
        // Both ends are created inside their namespaces: nothing appears in the host's.
        run(
            "ip",
            &[
                "link",
                "add",
                &ns.sender_dev,
                "netns",
                &ns.sender,
                "type",
                "veth",
                "peer",
                "name",
                &receiver_dev,
                "netns",
                &ns.receiver,
            ],
        )?;
        for (name, dev, ip) in [
            (&ns.sender, &ns.sender_dev, &ns.sender_ip),
            (&ns.receiver, &receiver_dev, &ns.receiver_ip),
        ] {
            run(
                "ip",
                &["-n", name, "addr", "add", &format!("{ip}/24"), "dev", dev],
            )?;
            run("ip", &["-n", name, "link", "set", dev, "up"])?;
            run("ip", &["-n", name, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }

    /// `ntm ARGS` inside namespace `name`.
    fn ntm(name: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", name])
            .arg(assert_cmd::cargo::cargo_bin("ntm"))
            .args(args)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.sender, &self.receiver] {
            if let Err(e) = run("ip", &["netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Deletes namespaces left by a run of this test that was killed before its guard ran.
fn remove_stale_namespaces() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(&format!("{PREFIX}-a-"))
            .or_else(|| name.strip_prefix(&format!("{PREFIX}-b-")))
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

/// Why this machine cannot run the test, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root".into());
    }
    if let Err(e) = run("ip", &["netns", "list"]) {
        return Some(format!("`ip netns` is not available: {e}"));
    }
    if let Err(e) = run("tc", &["-V"]) {
        return Some(format!("`tc` is not available: {e}"));
    }
    let probe = format!("{PREFIX}-probe-{}", std::process::id());
    if let Err(e) = run("ip", &["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e}"));
    }
    let _ = run("ip", &["netns", "del", &probe]);
    None
}

/// Spawns `command` and waits for a line on its standard error containing `ready`.
fn spawn_ready(mut command: Command, ready: &str) -> ChildGuard {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let guard = ChildGuard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keeps draining after the ready line, so the child never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains(ready) => return guard,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {ready:?} from {command:?}; it said {seen:?}"),
        }
    }
}

/// The bytes the sender's end of the veth has sent so far.
fn veth_tx_bytes(ns: &Namespaces) -> u64 {
    let json = run(
        "ip",
        &[
            "-n",
            &ns.sender,
            "-j",
            "-s",
            "link",
            "show",
            "dev",
            &ns.sender_dev,
        ],
    )
    .unwrap_or_else(|e| panic!("reading the veth's counters: {e}"));
    let doc: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("ip -j said ({e}): {json}"));
    doc[0]["stats64"]["tx"]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no stats64.tx.bytes in {doc}"))
}

/// Runs a 2-second upload with `ntm measure` from the sender namespace to `target` and returns
/// the receiver's rate, after checking that what the server received crossed the veth.
fn upload_bps(ns: &Namespaces, target: &str) -> f64 {
    let tx_before = veth_tx_bytes(ns);
    let child = Namespaces::ntm(
        &ns.sender,
        &["measure", target, "-t", "2", "--format", "json"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn ntm measure");
    let out = common::output_within(ChildGuard(child), Duration::from_secs(30));
    assert!(
        out.status.success(),
        "ntm measure {target} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crossed = veth_tx_bytes(ns) - tx_before;
    let doc = common::stdout_json(&out);
    let received = &doc["end"]["sum_received"];
    let bytes = received["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no end.sum_received.bytes in {doc}"));
    assert!(
        crossed >= bytes,
        "upload to {target}: the server received {bytes} bytes but only {crossed} crossed the veth"
    );
    received["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no end.sum_received.bits_per_second in {doc}"))
}

#[test]
fn rate_shaping_matches_kernel_tbf_in_netns_needs_root() {
    if let Some(why) = skip_reason() {
        assert!(
            std::env::var_os(REQUIRE).is_none_or(|v| v != "1"),
            "{REQUIRE}=1, but this machine cannot run the test: {why}"
        );
        eprintln!(
            "skipped rate_shaping_matches_kernel_tbf_in_netns_needs_root: {why} \
             (with {REQUIRE}=1 this fails)"
        );
        return;
    }
    remove_stale_namespaces();
    let ns = Namespaces::create().unwrap_or_else(|e| panic!("setting up the namespaces: {e}"));
    // One server for every upload, reachable from the sender only through the veth.
    let server = format!("{}:5201", ns.receiver_ip);
    let _server = spawn_ready(
        Namespaces::ntm(&ns.receiver, &["serve", "--listen", &server]),
        "listening on",
    );

    // Unshaped, the veth is far faster than the rate: below, the shaper is what limits.
    let bare = upload_bps(&ns, &server);
    assert!(
        bare >= 5.0 * RATE_BPS,
        "the bare veth carries only {:.2} Mbit/s, too close to {:.0} Mbit/s to tell shaping apart",
        bare / 1e6,
        RATE_BPS / 1e6
    );

    // ntm's link: the proxy in the sender namespace shapes, then its traffic crosses the veth.
    let _proxy = spawn_ready(
        Namespaces::ntm(
            &ns.sender,
            &[
                "proxy",
                "--listen",
                "127.0.0.1:5203",
                "--upstream",
                &server,
                "--rate-up",
                "20Mbit",
            ],
        ),
        "ntm proxy: 127.0.0.1:5203 -> ",
    );
    let proxy = upload_bps(&ns, "127.0.0.1:5203");

    // The kernel's link: tbf on the sender's end of the same veth, straight to the server.
    run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.sender,
            "tc",
            "qdisc",
            "add",
            "dev",
            &ns.sender_dev,
            "root",
            "tbf",
            "rate",
            "20mbit",
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ],
    )
    .unwrap_or_else(|e| panic!("adding the tbf: {e}"));
    let kernel = upload_bps(&ns, &server);

    eprintln!(
        "veth: bare {:.2} Mbit/s; at 20 Mbit/s: kernel tbf {:.2} Mbit/s, ntm proxy {:.2} Mbit/s",
        bare / 1e6,
        kernel / 1e6,
        proxy / 1e6
    );
    for (what, bps) in [("kernel tbf", kernel), ("ntm proxy", proxy)] {
        assert!(
            (bps / RATE_BPS - 1.0).abs() <= TOLERANCE,
            "{what}: {:.2} Mbit/s is not within 10% of 20 Mbit/s",
            bps / 1e6
        );
    }
    assert!(
        (proxy / kernel - 1.0).abs() <= TOLERANCE,
        "ntm proxy {:.2} Mbit/s and kernel tbf {:.2} Mbit/s differ by more than 10%",
        proxy / 1e6,
        kernel / 1e6
    );
}
