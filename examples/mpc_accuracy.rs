//! How well each MPC preset predicts the published TLSNotary measurements: for each preset
//! (and reveal option), the median and worst relative error of the predicted total time
//! against the published rows it models, and the same for bytes. The last line is the worst
//! median time error across presets. Run by `bench/mpc-accuracy.sh`.
//!
//! `-v` also prints every row; `--loo` adds a leave-one-out check (each row predicted by a
//! calibration that did not see it) for the releases calibrated on their own data.

use ntm::mpc::calibration::{comparisons, leave_one_out, Comparison, Scope};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn worst<'a>(rows: &[&'a Comparison], f: fn(&Comparison) -> f64) -> (&'a Comparison, f64) {
    rows.iter()
        .map(|c| (*c, f(c)))
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .expect("rows")
}

fn main() {
    let verbose = std::env::args().any(|a| a == "-v");
    if std::env::args().any(|a| a == "--loo") {
        let held = leave_one_out();
        for name in ["tlsn-alpha12", "tlsn-alpha13", "tlsn-alpha14"] {
            let rows: Vec<_> = held.iter().filter(|h| h.preset == name).collect();
            let w = rows
                .iter()
                .max_by(|a, b| a.time_error().abs().total_cmp(&b.time_error().abs()))
                .expect("rows");
            println!(
                "leave-one-out {name:<14} {:>3} rows  t med {:>5.1}%  t worst {:>+6.1}%  {} ({:.2} s predicted, {:.2} s measured)",
                rows.len(),
                median(rows.iter().map(|h| h.time_error().abs()).collect()) * 100.0,
                w.time_error() * 100.0,
                w.measured.label(),
                w.predicted_seconds,
                w.measured_seconds
            );
            if verbose {
                for h in &rows {
                    println!(
                        "    {:<60} {:>+6.1}%",
                        h.measured.label(),
                        h.time_error() * 100.0
                    );
                }
            }
        }
        println!();
    }
    let all = comparisons();
    let mut groups: Vec<(String, Vec<&Comparison>)> = Vec::new();
    for c in &all {
        let name = match c.reveal {
            Some(r) => format!("{} --reveal {r}", c.preset),
            None => c.preset.to_string(),
        };
        match groups.iter_mut().find(|g| g.0 == name) {
            Some(g) => g.1.push(c),
            None => groups.push((name, vec![c])),
        }
    }
    println!(
        "{:<28} {:>4}  {:>8} {:>8}  {:>8} {:>8}  worst time row",
        "preset", "rows", "t med", "t worst", "up worst", "dn worst"
    );
    let mut worst_median: (f64, String) = (0.0, String::new());
    for (name, rows) in &groups {
        let time = median(rows.iter().map(|c| c.time_error().abs()).collect());
        let (wrow, werr) = worst(rows, Comparison::time_error);
        let (_, up) = worst(rows, Comparison::upload_error);
        let (_, down) = worst(rows, Comparison::download_error);
        println!(
            "{:<28} {:>4}  {:>7.1}% {:>+7.1}%  {:>+7.2}% {:>+7.2}%  {}{} ({:.2} s predicted, {:.2} s measured)",
            name,
            rows.len(),
            time * 100.0,
            werr * 100.0,
            up * 100.0,
            down * 100.0,
            wrow.measured.label(),
            if wrow.scope == Scope::PreprocessAndOnline { " [preprocess+online]" } else { "" },
            wrow.predicted_seconds(),
            wrow.measured_seconds(),
        );
        if verbose {
            for c in rows {
                println!(
                    "    {:<60} t {:>8.3} / {:>8.3} s {:>+6.1}%  up {:>+6.2}%  down {:>+6.2}%",
                    c.measured.label(),
                    c.predicted_seconds(),
                    c.measured_seconds(),
                    c.time_error() * 100.0,
                    c.upload_error() * 100.0,
                    c.download_error() * 100.0
                );
            }
        }
        if time > worst_median.0 {
            worst_median = (time, name.clone());
        }
    }
    println!(
        "worst median time error across presets: {:.1}% ({})",
        worst_median.0 * 100.0,
        worst_median.1
    );
}
