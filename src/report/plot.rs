//! Charts as SVG files (plotters' SVG backend: no system font libraries needed).

use std::path::Path;

use plotters::prelude::*;

use super::stream::Way;
use crate::measure::StreamOutcome;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct PlotError {
    pub path: String,
    pub message: String,
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// One line of a chart.
struct Line {
    label: Option<String>,
    points: Vec<(f64, f64)>,
    color: RGBAColor,
    width: u32,
}

/// Draws lines on one pair of axes, from 0 to the largest x and (with 10% headroom) y, or to
/// `y_top` if given, with a legend when lines are labelled.
fn line_chart(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    lines: Vec<Line>,
    y_top: Option<f64>,
) -> Result<(), PlotError> {
    let max = |pick: fn(&(f64, f64)) -> f64| {
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(pick))
            .fold(0.0f64, f64::max)
            .max(1e-3)
    };
    let x_max = max(|p| p.0);
    let y_max = y_top.unwrap_or_else(|| max(|p| p.1) * 1.1);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_label_formatter(&|v| {
            if y_max >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .draw()
        .map_err(|e| plot_error(path, e))?;
    let labelled = lines.iter().any(|l| l.label.is_some());
    for line in lines {
        let color = line.color;
        let drawn = chart
            .draw_series(LineSeries::new(line.points, color.stroke_width(line.width)))
            .map_err(|e| plot_error(path, e))?;
        if let Some(label) = line.label {
            drawn
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}

/// Throughput per interval over time: one line per stream and direction, and their sum.
pub fn throughput_svg(path: &Path, outcome: &StreamOutcome) -> Result<(), PlotError> {
    let ways = Way::of(outcome.request.direction);
    // (label, points of (end seconds, Mbit/s))
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for &way in ways {
        let tag = match way {
            Way::Forward => "up",
            Way::Reverse => "down",
        };
        let n = outcome.request.streams as usize;
        let mut sum = Vec::new();
        let mut per: Vec<Vec<(f64, f64)>> = vec![Vec::new(); n];
        for s in &outcome.intervals {
            let secs = (s.end - s.start).as_secs_f64().max(1e-9);
            let mut total = 0.0;
            for (i, st) in s.streams.iter().enumerate() {
                let bytes = match way {
                    Way::Forward => st.bytes_sent,
                    Way::Reverse => st.bytes_received,
                };
                let mbps = bytes as f64 * 8.0 / secs / 1e6;
                total += mbps;
                if let Some(p) = per.get_mut(i) {
                    p.push((s.end.as_secs_f64(), mbps));
                }
            }
            sum.push((s.end.as_secs_f64(), total));
        }
        if n > 1 {
            for (i, p) in per.into_iter().enumerate() {
                series.push((format!("stream {i} {tag}"), p));
            }
        }
        series.push((format!("sum {tag}"), sum));
    }
    let lines = series
        .into_iter()
        .enumerate()
        .map(|(i, (label, points))| Line {
            width: if label.starts_with("sum") { 3 } else { 1 },
            label: Some(label),
            points,
            color: Palette99::pick(i).to_rgba(),
        })
        .collect();
    line_chart(
        path,
        "ntm throughput per interval",
        ("seconds", "Mbit/s"),
        lines,
        None,
    )
}

/// The latency distribution as a CDF: for each round-trip time, the share of transactions at
/// or below it.
pub fn latency_cdf_svg(
    path: &Path,
    outcome: &crate::measure::LatencyOutcome,
) -> Result<(), PlotError> {
    let h = &outcome.rtt_ns;
    let total = h.len().max(1) as f64;
    let mut points = Vec::new();
    let mut seen = 0u64;
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        points.push((v.value_iterated_to() as f64 / 1000.0, seen as f64 / total));
    }
    let line = Line {
        label: None,
        points,
        color: BLUE.to_rgba(),
        width: 2,
    };
    line_chart(
        path,
        "ntm round-trip time distribution",
        ("round-trip time (µs)", "fraction of transactions"),
        vec![line],
        Some(1.0),
    )
}

/// Bandwidth over time through the proxy, up and down, from its total timeline.
pub fn proxy_svg(
    path: &Path,
    timeline: &crate::proxy::timeline::Timeline,
) -> Result<(), PlotError> {
    let bin = timeline.bin.as_secs_f64();
    // Steps, one flat segment per bin (a bin is a rate over its whole width), down to zero after
    // the last bin with bytes: traffic that fits in one bin still draws a line. Both directions
    // span the same bins.
    let bins = timeline.up.len().max(timeline.down.len());
    let series = |values: &[u64]| -> Vec<(f64, f64)> {
        (0..bins)
            .flat_map(|i| {
                let rate = values.get(i).copied().unwrap_or(0) as f64 * 8.0 / bin / 1e6;
                [(i as f64 * bin, rate), ((i + 1) as f64 * bin, rate)]
            })
            .chain((bins > 0).then_some((bins as f64 * bin, 0.0)))
            .collect()
    };
    up_down_svg(
        path,
        "ntm proxy bandwidth",
        "Mbit/s",
        series(&timeline.up),
        series(&timeline.down),
    )
}

/// Two lines over time, up (red) and down (blue), with a legend.
pub fn up_down_svg(
    path: &Path,
    title: &str,
    y_desc: &str,
    up: Vec<(f64, f64)>,
    down: Vec<(f64, f64)>,
) -> Result<(), PlotError> {
    let lines = [("up", up, RED), ("down", down, BLUE)]
        .into_iter()
        .map(|(label, points, color)| Line {
            label: Some(label.to_string()),
            points,
            color: color.to_rgba(),
            width: 2,
        })
        .collect();
    line_chart(path, title, ("seconds", y_desc), lines, None)
}

/// The total time over a rate x RTT grid as a heatmap (log axes; green is fast, red slow), with
/// the budget's frontier (the lowest rate within budget at each RTT) drawn as a line.
pub fn sweep_svg(
    path: &Path,
    protocol: &str,
    sweep: &crate::mpc::sweep::Sweep,
    budget: Option<f64>,
) -> Result<(), PlotError> {
    let (rates, rtts) = (&sweep.rates_bps, &sweep.rtts_seconds);
    if rates.is_empty() || rtts.is_empty() {
        return Err(plot_error(path, "the grid is empty"));
    }
    // Cell edges: geometric midpoints between grid values, extended half a step outside.
    let edges = |v: &[f64]| -> Vec<f64> {
        let mut sorted = v.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let step = |i: usize, j: usize| (sorted[j] / sorted[i]).sqrt();
        let mut e = Vec::with_capacity(n + 1);
        e.push(if n > 1 {
            sorted[0] / step(0, 1)
        } else {
            sorted[0] / 1.5
        });
        e.extend(sorted.windows(2).map(|w| (w[0] * w[1]).sqrt()));
        e.push(if n > 1 {
            sorted[n - 1] * step(n - 2, n - 1)
        } else {
            sorted[0] * 1.5
        });
        e
    };
    let (x_edges, y_edges) = (edges(rates), edges(rtts));
    let to_mbit = 1e-6;
    let to_ms = 1e3;
    let times: Vec<f64> = sweep
        .rows
        .iter()
        .flatten()
        .map(|c| c.seconds.max(1e-9))
        .collect();
    let (t_min, t_max) = times
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    let color = |t: f64| {
        let f = if t_max > t_min {
            (t.max(1e-9).ln() - t_min.ln()) / (t_max.ln() - t_min.ln())
        } else {
            0.0
        };
        // 120 degrees (green) for the fastest down to 0 (red) for the slowest.
        HSLColor((1.0 - f) / 3.0, 0.75, 0.5)
    };
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let title = format!(
        "{protocol}: session time, {} to {}{}",
        format_duration_secs(t_min),
        format_duration_secs(t_max),
        budget.map_or(String::new(), |b| format!(
            " (line: {} budget)",
            format_duration_secs(b)
        ))
    );
    let x_range = (x_edges[0] * to_mbit)..(x_edges[x_edges.len() - 1] * to_mbit);
    let y_range = (y_edges[0] * to_ms)..(y_edges[y_edges.len() - 1] * to_ms);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("rate both ways (Mbit/s)")
        .y_desc("RTT (ms)")
        .disable_mesh()
        .draw()
        .map_err(|e| plot_error(path, e))?;
    let mut sorted_rates: Vec<(usize, f64)> = rates.iter().copied().enumerate().collect();
    sorted_rates.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut sorted_rtts: Vec<(usize, f64)> = rtts.iter().copied().enumerate().collect();
    sorted_rtts.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut cells = Vec::new();
    for (yi, &(r, _)) in sorted_rtts.iter().enumerate() {
        for (xi, &(c, _)) in sorted_rates.iter().enumerate() {
            let cell = &sweep.rows[r][c];
            cells.push(Rectangle::new(
                [
                    (x_edges[xi] * to_mbit, y_edges[yi] * to_ms),
                    (x_edges[xi + 1] * to_mbit, y_edges[yi + 1] * to_ms),
                ],
                color(cell.seconds).filled(),
            ));
        }
    }
    chart.draw_series(cells).map_err(|e| plot_error(path, e))?;
    if let Some(b) = budget {
        let frontier: Vec<(f64, f64)> = sweep
            .budget_frontier(b)
            .into_iter()
            .zip(rtts)
            .filter_map(|(rate, &rtt)| rate.map(|r| (r * to_mbit, rtt * to_ms)))
            .collect();
        chart
            .draw_series(LineSeries::new(frontier, BLACK.stroke_width(3)))
            .map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}

fn format_duration_secs(s: f64) -> String {
    crate::report::units::format_duration(std::time::Duration::from_secs_f64(s.max(0.0)))
}
