//! `ntm proxy --tui`: a live view of the proxy (ratatui): open connections with their current
//! rates, sparklines of total bandwidth, and the last connections that closed. Runs on its own
//! thread (terminal input is blocking); `q`, Esc or Ctrl-C stops the proxy.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style, Stylize};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table};
use tokio_util::sync::CancellationToken;

use crate::proxy::Counters;
use crate::report::units::{format_bit_rate, format_bytes, format_duration};

/// How often the view refreshes.
const TICK: Duration = Duration::from_millis(250);
/// Closed connections kept on screen.
pub const RECENT: usize = 8;

/// Lines describing the last connections that closed, newest last.
pub type Recent = Arc<Mutex<VecDeque<String>>>;

/// A bordered sparkline of bandwidth samples, titled with the current rate; shared by the
/// proxy's and `top`'s live views.
pub(super) fn sparkline(title: String, data: &[u64], color: Color) -> Sparkline<'_> {
    Sparkline::default()
        .block(Block::default().borders(Borders::ALL).title(title))
        .data(data)
        .style(Style::default().fg(color))
}

/// Runs the view until the user quits (which cancels `stop`) or `stop` is cancelled.
pub fn run(
    counters: Arc<Counters>,
    recent: Recent,
    title: String,
    stop: CancellationToken,
) -> std::io::Result<()> {
    on_terminal(|terminal| view_loop(terminal, &counters, &recent, &title, &stop))
}

/// Gives `view` the terminal (alternate screen, raw mode) and takes it back. Log lines are held
/// meanwhile, since they would be written over the view, and printed after it; shared by the
/// proxy's and `top`'s live views.
pub(super) fn on_terminal<T>(view: impl FnOnce(&mut ratatui::DefaultTerminal) -> T) -> T {
    let held = super::log::hold();
    let mut terminal = ratatui::init();
    let result = view(&mut terminal);
    ratatui::restore();
    drop(held);
    result
}

fn view_loop(
    terminal: &mut ratatui::DefaultTerminal,
    counters: &Counters,
    recent: &Recent,
    title: &str,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    let mut previous: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut last_totals = (0u64, 0u64);
    let mut history_up: VecDeque<u64> = VecDeque::new();
    let mut history_down: VecDeque<u64> = VecDeque::new();
    let mut last = Instant::now();
    while !stop.is_cancelled() {
        let elapsed = last.elapsed().as_secs_f64().max(1e-3);
        last = Instant::now();
        let snapshot = counters.snapshot();
        let totals = (
            counters.bytes_up.load(Ordering::Relaxed),
            counters.bytes_down.load(Ordering::Relaxed),
        );
        let bps = |now: u64, before: u64| (now.saturating_sub(before)) as f64 * 8.0 / elapsed;
        let (up_bps, down_bps) = (bps(totals.0, last_totals.0), bps(totals.1, last_totals.1));
        last_totals = totals;
        for (h, v) in [(&mut history_up, up_bps), (&mut history_down, down_bps)] {
            h.push_back(v as u64);
            if h.len() > 512 {
                h.pop_front();
            }
        }
        let rows: Vec<Row> = snapshot
            .iter()
            .map(|c| {
                let (pu, pd) = previous.get(&c.id).copied().unwrap_or((0, 0));
                Row::new(vec![
                    c.id.to_string(),
                    c.client.to_string(),
                    format_duration(Duration::from_secs(c.age.as_secs())),
                    format_bit_rate(bps(c.bytes_up, pu)),
                    format_bit_rate(bps(c.bytes_down, pd)),
                    format_bytes(c.bytes_up),
                    format_bytes(c.bytes_down),
                    c.flights.to_string(),
                ])
            })
            .collect();
        previous = snapshot
            .iter()
            .map(|c| (c.id, (c.bytes_up, c.bytes_down)))
            .collect();
        let closed: Vec<String> = recent
            .lock()
            .expect("recent lock")
            .iter()
            .cloned()
            .collect();
        terminal.draw(|frame| {
            let [head, up_area, down_area, table_area, closed_area] = Layout::vertical([
                Constraint::Length(2),
                Constraint::Length(4),
                Constraint::Length(4),
                Constraint::Min(5),
                Constraint::Length(RECENT as u16 + 2),
            ])
            .areas(frame.area());
            frame.render_widget(
                Paragraph::new(format!(
                    "{title}   open {}  total {}  up {}  down {}   (q to quit)",
                    snapshot.len(),
                    counters.connections.load(Ordering::Relaxed),
                    format_bytes(totals.0),
                    format_bytes(totals.1)
                ))
                .bold(),
                head,
            );
            let width = up_area.width.saturating_sub(2) as usize;
            let tail = |h: &VecDeque<u64>| -> Vec<u64> {
                h.iter()
                    .skip(h.len().saturating_sub(width))
                    .copied()
                    .collect()
            };
            for (area, label, h, now, color) in [
                (up_area, "up", &history_up, up_bps, Color::Red),
                (down_area, "down", &history_down, down_bps, Color::Blue),
            ] {
                let data = tail(h);
                let title = format!("{label} {}", format_bit_rate(now));
                frame.render_widget(sparkline(title, &data, color), area);
            }
            let widths = [
                Constraint::Length(6),
                Constraint::Length(22),
                Constraint::Length(9),
                Constraint::Length(15),
                Constraint::Length(15),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(8),
            ];
            frame.render_widget(
                Table::new(rows.clone(), widths)
                    .header(
                        Row::new(vec![
                            "id", "client", "age", "up now", "down now", "up", "down", "flights",
                        ])
                        .bold(),
                    )
                    .block(
                        Block::default()
                            .borders(Borders::ALL)
                            .title("open connections"),
                    ),
                table_area,
            );
            frame.render_widget(
                Paragraph::new(closed.join("\n")).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title("recently closed"),
                ),
                closed_area,
            );
        })?;
        if event::poll(TICK)? {
            if let Event::Key(key) = event::read()? {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                    stop.cancel();
                }
            }
        }
    }
    Ok(())
}
