//! The MPC cost model (issue 5): calibration against the published TLSNotary measurements,
//! units, monotonicity over link grids, the protocol templates and protocol-file errors.

use std::time::Duration;

use ntm::mpc::calibration::{comparisons, Comparison, Scope};
use ntm::mpc::{
    preset, CostModel, FaqModel, Link, Protocol, ProtocolError, Resource, Reveal, Workload,
    DEFAULT_PRESET, PRESETS,
};

const KIB: u64 = 1024;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn describe(c: &Comparison) -> String {
    format!(
        "{}{} vs {}{}: time {:.3} s predicted / {:.3} s measured ({:+.1}%), upload {:+.3}%, download {:+.3}%",
        c.preset,
        c.reveal.map(|r| format!(" --reveal {r}")).unwrap_or_default(),
        c.measured.label(),
        if c.scope == Scope::PreprocessAndOnline {
            " [preprocess+online]"
        } else {
            ""
        },
        c.predicted_seconds(),
        c.measured_seconds(),
        c.time_error() * 100.0,
        c.upload_error() * 100.0,
        c.download_error() * 100.0,
    )
}

/// Issue 5's calibration test: every calibrated preset against every published row it models
/// (medians over the runs of each configuration). Bytes up and down within 2%, total time
/// within 15%, over bandwidths 5-1000 Mbit/s, RTTs 1-200 ms and responses 1-128 KB.
///
/// The baseline rows at 1 ms of alpha.14 and alpha.15 are compared on preprocess and online
/// only: their finalize downloads nothing where every sweep row's finalize downloads 480-670 KB
/// (those runs did not prove the request in zero knowledge), so it is another configuration.
#[test]
fn calibration_matches_every_published_row() {
    let all = comparisons();
    let calibrated: Vec<&Comparison> = all.iter().filter(|c| c.preset != "tlsn-faq").collect();
    // 18 alpha.12 + 24 alpha.13 + 16 alpha.14 configurations, 9 per alpha.15 mode and reveal.
    assert_eq!(calibrated.len(), 18 + 24 + 16 + 4 * 9);
    for c in &calibrated {
        assert!(
            c.measured.runs >= 3,
            "{}: {} runs",
            c.measured.label(),
            c.measured.runs
        );
    }

    let worst = |f: fn(&Comparison) -> f64| {
        *calibrated
            .iter()
            .max_by(|a, b| f(a).abs().total_cmp(&f(b).abs()))
            .unwrap()
    };
    let worst_up = worst(Comparison::upload_error);
    let worst_down = worst(Comparison::download_error);
    let worst_time = worst(Comparison::time_error);
    eprintln!("worst upload row:   {}", describe(worst_up));
    eprintln!("worst download row: {}", describe(worst_down));
    eprintln!("worst time row:     {}", describe(worst_time));
    let mut names: Vec<String> = Vec::new();
    for c in &calibrated {
        let n = format!("{} {:?}", c.preset, c.reveal);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    for n in &names {
        let rows: Vec<&&Comparison> = calibrated
            .iter()
            .filter(|c| &format!("{} {:?}", c.preset, c.reveal) == n)
            .collect();
        let errs: Vec<f64> = rows.iter().map(|c| c.time_error().abs()).collect();
        eprintln!(
            "{n}: {} rows, time error median {:.1}%, worst {:.1}%",
            rows.len(),
            median(errs.clone()) * 100.0,
            errs.iter().cloned().fold(0.0, f64::max) * 100.0
        );
    }

    for c in &calibrated {
        assert!(c.upload_error().abs() <= 0.02, "upload: {}", describe(c));
        assert!(
            c.download_error().abs() <= 0.02,
            "download: {}",
            describe(c)
        );
        assert!(c.time_error().abs() <= 0.15, "time: {}", describe(c));
    }

    // The grids the issue names are all there.
    let rates: Vec<u32> = calibrated.iter().map(|c| c.measured.rate_mbit).collect();
    let rtts: Vec<u32> = calibrated.iter().map(|c| c.measured.rtt_ms).collect();
    let recvs: Vec<u64> = calibrated.iter().map(|c| c.measured.recv_bytes).collect();
    assert_eq!(rates.iter().min(), Some(&5));
    assert_eq!(rates.iter().max(), Some(&1000));
    assert_eq!(rtts.iter().min(), Some(&1));
    assert_eq!(rtts.iter().max(), Some(&200));
    assert_eq!(recvs.iter().min(), Some(&KIB));
    assert_eq!(recvs.iter().max(), Some(&(128 * KIB)));
}

/// Every phase's bytes, not only the totals, follow the data (the replay sends them per phase).
#[test]
fn phase_bytes_follow_the_data() {
    for c in comparisons().iter().filter(|c| c.preset != "tlsn-faq") {
        let phases = match c.scope {
            Scope::Session => 3,
            Scope::PreprocessAndOnline => 2,
        };
        for p in 0..phases {
            let e = &c.estimate.phases[p];
            for (what, predicted, measured) in [
                ("upload", e.upload_bytes as f64, c.measured.upload[p]),
                ("download", e.download_bytes as f64, c.measured.download[p]),
            ] {
                // Within 2%, or within 2 KB where a phase moves almost nothing.
                let ok = (predicted - measured).abs() <= (0.02 * measured).max(2048.0);
                assert!(
                    ok,
                    "{} {what}: {predicted} vs {measured}: {}",
                    e.name,
                    describe(c)
                );
            }
        }
    }
}

/// Issue 5: "tlsn-faq gives 25 MB + 10 MB + 400 KB = about 35.4 MB (decimal MB, as the source
/// states) for 1 KB / 10 KB". ntm's 1 KB is 1024 bytes; the FAQ's MB and KB are decimal.
#[test]
fn faq_units_are_the_faqs_decimal_megabytes() {
    let e = FaqModel.estimate(KIB, 10 * KIB);
    assert_eq!(e.upload_bytes, 35_400_000);
    let p = preset("tlsn-faq", Reveal::default()).unwrap();
    let w = Workload::new(KIB, 10 * KIB);
    assert_eq!(p.bytes(&w).upload_bytes, 35_400_000);
    assert_eq!(p.bytes(&w), e);
    assert_eq!(FaqModel.name(), "tlsn-faq");
    assert!(p.about().contains("decimal"));
}

#[test]
fn presets_are_documented_and_the_default_is_the_newest_mpc_mode() {
    assert_eq!(DEFAULT_PRESET, "tlsn-mpc");
    let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
    for n in [
        "tlsn-alpha12",
        "tlsn-alpha13",
        "tlsn-alpha14",
        "tlsn-mpc",
        "tlsn-proxy",
        "tlsn-faq",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    for info in PRESETS {
        // Every source names a date.
        assert!(
            info.source.contains("2025-") || info.source.contains("2026-"),
            "{}: {}",
            info.name,
            info.source
        );
        assert_eq!(
            info.takes_reveal,
            matches!(info.name, "tlsn-mpc" | "tlsn-proxy")
        );
    }
    assert!(preset("tlsn-alpha11", Reveal::Full).is_none());
}

fn all_protocols() -> Vec<(String, Protocol)> {
    let mut v = Vec::new();
    for info in PRESETS {
        for r in [Reveal::Full, Reveal::Redacted] {
            if r == Reveal::Redacted && !info.takes_reveal {
                continue;
            }
            v.push((format!("{} {r}", info.name), preset(info.name, r).unwrap()));
        }
    }
    for t in TEMPLATES {
        v.push((t.0.to_string(), Protocol::from_toml(t.1).unwrap()));
    }
    v
}

/// Issue 5: more rate never costs more time, and more RTT never costs less; per phase too.
#[test]
fn time_is_monotonic_in_rate_and_rtt() {
    let rates_mbit = [
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2500.0, 10_000.0,
    ];
    let rtts_ms = [
        0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 150.0, 200.0, 300.0, 600.0,
    ];
    let workloads = [
        Workload::new(KIB, 10 * KIB),
        Workload::new(4 * KIB, 128 * KIB),
        Workload::new(100, 100),
    ];
    for (name, p) in all_protocols() {
        for w in &workloads {
            let t = |up: f64, down: f64, rtt: f64| {
                let link = Link {
                    up_bps: up * 1e6,
                    down_bps: down * 1e6,
                    rtt: Duration::from_secs_f64(rtt / 1000.0),
                };
                p.estimate(w, &link)
            };
            for &rtt in &rtts_ms {
                for pair in rates_mbit.windows(2) {
                    for (a, b) in [
                        (t(pair[0], pair[0], rtt), t(pair[1], pair[1], rtt)),
                        (t(pair[0], 50.0, rtt), t(pair[1], 50.0, rtt)),
                        (t(50.0, pair[0], rtt), t(50.0, pair[1], rtt)),
                    ] {
                        assert!(
                            b.total.seconds <= a.total.seconds * (1.0 + 1e-12),
                            "{name} {w:?}: faster link at {rtt} ms took longer: {} > {}",
                            b.total.seconds,
                            a.total.seconds
                        );
                        for (pa, pb) in a.phases.iter().zip(&b.phases) {
                            assert!(
                                pb.seconds <= pa.seconds * (1.0 + 1e-12),
                                "{name} {}",
                                pa.name
                            );
                        }
                    }
                }
            }
            for &rate in &rates_mbit {
                for pair in rtts_ms.windows(2) {
                    let (a, b) = (t(rate, rate, pair[0]), t(rate, rate, pair[1]));
                    assert!(
                        b.total.seconds >= a.total.seconds * (1.0 - 1e-12),
                        "{name} {w:?}: longer RTT at {rate} Mbit/s took less time"
                    );
                }
            }
        }
    }
}

#[test]
fn the_dominant_resource_follows_the_link() {
    let p = preset(DEFAULT_PRESET, Reveal::Redacted).unwrap();
    let w = Workload::new(KIB, 10 * KIB);
    let slow = p.estimate(&w, &Link::symmetric(20e6, Duration::from_millis(20)));
    assert_eq!(slow.total.dominant, Resource::UploadBandwidth);
    assert_eq!(slow.phases[0].dominant, Resource::UploadBandwidth);
    let far = p.estimate(&w, &Link::symmetric(1e9, Duration::from_millis(200)));
    assert_eq!(far.total.dominant, Resource::Latency);
    // Totals are the sums of the phases.
    let sum: f64 = slow.phases.iter().map(|p| p.seconds).sum();
    assert!((slow.total.seconds - sum).abs() < 1e-9);
    let up: u64 = slow.phases.iter().map(|p| p.upload_bytes).sum();
    assert_eq!(slow.total.upload_bytes, up);
    assert_eq!(
        slow.phases
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["preprocess", "online", "finalize"]
    );
}

/// What a replay sends is what the estimate counts, and scaled or compute-free patterns can be
/// priced with the same link response.
#[test]
fn replay_pattern_is_the_estimates_pattern() {
    let p = preset(DEFAULT_PRESET, Reveal::Full).unwrap();
    let w = Workload::new(KIB, 10 * KIB);
    let link = Link::symmetric(50e6, Duration::from_millis(20));
    let costs = p.phases(&w);
    let e = p.estimate(&w, &link);
    assert_eq!(p.estimate_phases(&costs, &link), e);
    for (c, pe) in costs.iter().zip(&e.phases) {
        assert_eq!(c.upload_bytes, pe.upload_bytes);
        assert_eq!(c.download_bytes, pe.download_bytes);
        assert_eq!(c.round_trips, pe.round_trips);
        assert!((c.compute.as_secs_f64() - pe.compute_seconds).abs() < 1e-9);
    }
    let scaled: Vec<_> = costs
        .iter()
        .map(|c| ntm::mpc::PhaseCost {
            upload_bytes: (c.upload_bytes as f64 * 0.05) as u64,
            download_bytes: (c.download_bytes as f64 * 0.05) as u64,
            compute: Duration::ZERO,
            ..c.clone()
        })
        .collect();
    let small = p.sequential().estimate_phases(&scaled, &link);
    assert!(small.total.seconds < e.total.seconds);
    assert_eq!(small.total.round_trips, e.total.round_trips);
    assert!(small.total.round_trips >= 10);
}

const TEMPLATES: [(&str, &str); 2] = [
    (
        "garbled-circuit-2pc",
        include_str!("../protocols/garbled-circuit-2pc.toml"),
    ),
    (
        "secret-sharing-npc",
        include_str!("../protocols/secret-sharing-npc.toml"),
    ),
];

#[test]
fn garbled_circuit_template_prices_and_gates() {
    let p = Protocol::from_toml(TEMPLATES[0].1).unwrap();
    assert_eq!(p.name(), "gc-2pc");
    let phases = |sent: u64| p.phases(&Workload::new(sent, 0));
    let garble = |sent: u64| {
        phases(sent)
            .into_iter()
            .find(|c| c.name == "garble")
            .unwrap()
            .upload_bytes
    };
    // Fixed part: 4 SHA-256 compressions x 22,500 AND gates x 32 bytes.
    assert_eq!(garble(0), 4 * 22_500 * 32);
    // One AES-128 block (16 bytes of request): 6,400 AND gates x 32 bytes.
    assert_eq!(garble(16) - garble(0), 6_400 * 32);
    assert_eq!(garble(KIB) - garble(0), 64 * 6_400 * 32);
    // Inputs: 128 garbler labels + 128 OTs of two ciphertexts, 16 bytes each.
    let inputs = phases(0).into_iter().find(|c| c.name == "inputs").unwrap();
    assert_eq!(inputs.upload_bytes, 128 * 16 + 128 * 32);
    assert_eq!(inputs.download_bytes, 128 * 16);
}

#[test]
fn secret_sharing_template_prices_rounds_of_pairwise_messages() {
    let p = Protocol::from_toml(TEMPLATES[1].1).unwrap();
    let c = p.phases(&Workload::new(1000, 64));
    let compute = c.iter().find(|c| c.name == "compute").unwrap();
    // R = 20 rounds of M = 2 x 256 x 16 bytes to each of N - 1 = 2 parties.
    assert_eq!(compute.upload_bytes, 20 * 8192 * 2);
    assert_eq!(compute.download_bytes, 20 * 8192 * 2);
    assert_eq!(compute.round_trips, 20);
    assert_eq!(c[0].upload_bytes, 2 * 1000);
    let total = p.estimate(
        &Workload::new(1000, 64),
        &Link::symmetric(100e6, Duration::from_millis(50)),
    );
    assert_eq!(total.total.round_trips, 22);
    assert_eq!(total.total.dominant, Resource::Latency);
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// Issue 5: malformed files get errors naming the field and the line.
#[test]
fn bad_protocol_files_name_the_field_and_the_line() {
    let gc = TEMPLATES[0].1;
    let cases: Vec<(String, &str, &str)> = vec![
        (
            gc.replace("aes_and_gates = 6400", "aes_and_gates = \"6400 *\""),
            "aes_and_gates = \"6400 *\"",
            "params.aes_and_gates",
        ),
        (
            gc.replace("round_trips = 2", "round_trip = 2"),
            "round_trip = 2",
            "phase[0].round_trip: unknown field",
        ),
        (
            gc.replace("overlap = 0.5", "overlap = 5"),
            "overlap = 5",
            "phase[1].overlap: must be between 0 and 1",
        ),
        (
            gc.replace(
                "download = \"base_ots * 32\"",
                "download = \"base_otz * 32\"",
            ),
            "base_otz",
            "phase[0].download: unknown parameter 'base_otz'",
        ),
        (
            gc.replace("upload = { per_sent = 1 }", "upload = { per_sent = [1] }"),
            "per_sent = [1]",
            "phase[3].upload.per_sent: expected a number",
        ),
    ];
    for (text, needle, field) in cases {
        let err = Protocol::from_toml(&text).unwrap_err();
        let line = line_of(&text, needle);
        match &err {
            ProtocolError::Field { line: l, .. } => assert_eq!(*l, line, "{err}"),
            other => panic!("expected a field error, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("line {line}: {field}")), "{msg}");
    }
    // Not TOML at all.
    let err = Protocol::from_toml("name = \"x\"\n[[phase]\n").unwrap_err();
    assert!(
        matches!(err, ProtocolError::Syntax { line: 2, .. }),
        "{err:?}"
    );
}
