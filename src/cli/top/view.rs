//! `ntm top`'s live view (ratatui): total bandwidth sparklines, interface totals, and processes
//! sortable by rate, total, pid or name, each expandable to its connections. Runs on its own
//! thread (terminal input blocks); `q`, Esc or Ctrl-C stops `ntm top`. It only draws: the
//! figures come computed in each [`Snapshot`].

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use tokio_util::sync::CancellationToken;

use crate::monitor::{Owner, ProcessRow, Snapshot};
use crate::report::monitor::NEEDS_ROOT_NOTE;
use crate::report::units::{format_bit_rate, format_bytes};

const TICK: Duration = Duration::from_millis(200);
const HISTORY: usize = 512;

/// What the poller hands the view.
#[derive(Default)]
pub struct Shared {
    snapshot: Option<Snapshot>,
    up: VecDeque<u64>,
    down: VecDeque<u64>,
}

impl Shared {
    pub fn push(&mut self, s: Snapshot) {
        for (h, v) in [
            (&mut self.up, s.up_bits_per_second),
            (&mut self.down, s.down_bits_per_second),
        ] {
            h.push_back(v as u64);
            if h.len() > HISTORY {
                h.pop_front();
            }
        }
        self.snapshot = Some(s);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Rate,
    Total,
    Pid,
    Name,
}

impl SortKey {
    fn next(self) -> SortKey {
        match self {
            SortKey::Rate => SortKey::Total,
            SortKey::Total => SortKey::Pid,
            SortKey::Pid => SortKey::Name,
            SortKey::Name => SortKey::Rate,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SortKey::Rate => "rate",
            SortKey::Total => "total",
            SortKey::Pid => "pid",
            SortKey::Name => "name",
        }
    }
}

/// Sorts owners for display.
fn sort(rows: &mut [ProcessRow], key: SortKey) {
    match key {
        SortKey::Rate => rows.sort_by(|a, b| {
            (b.up_bits_per_second + b.down_bits_per_second)
                .total_cmp(&(a.up_bits_per_second + a.down_bits_per_second))
        }),
        SortKey::Total => rows.sort_by_key(|r| std::cmp::Reverse(r.bytes_up + r.bytes_down)),
        SortKey::Pid => rows.sort_by_key(|r| r.owner),
        SortKey::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
    }
}

/// Runs until the user quits (which cancels `stop`) or `stop` is cancelled.
pub fn run(
    shared: Arc<Mutex<Shared>>,
    title: String,
    expand_all: bool,
    stop: CancellationToken,
) -> std::io::Result<()> {
    super::super::tui::on_terminal(|terminal| {
        view_loop(terminal, &shared, &title, expand_all, &stop)
    })
}

fn view_loop(
    terminal: &mut ratatui::DefaultTerminal,
    shared: &Mutex<Shared>,
    title: &str,
    mut expand_all: bool,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    let mut key = SortKey::Rate;
    let mut selected = 0usize;
    let mut expanded: HashSet<Owner> = HashSet::new();
    while !stop.is_cancelled() {
        let (snapshot, up, down) = {
            let s = shared.lock().expect("view state");
            (s.snapshot.clone(), s.up.clone(), s.down.clone())
        };
        let mut owners = snapshot
            .as_ref()
            .map_or_else(Vec::new, |s| s.processes.clone());
        sort(&mut owners, key);
        selected = selected.min(owners.len().saturating_sub(1));
        let selected_owner = owners.get(selected).map(|r| r.owner);
        let mut rows = Vec::new();
        let mut selected_row = 0;
        for (i, p) in owners.iter().enumerate() {
            if i == selected {
                selected_row = rows.len();
            }
            let open = expand_all || expanded.contains(&p.owner);
            let marker = if p.connections.is_empty() {
                " "
            } else if open {
                "-"
            } else {
                "+"
            };
            let name = if p.exited {
                format!("{marker} {} (exited)", p.name)
            } else {
                format!("{marker} {}", p.name)
            };
            rows.push(Row::new(vec![
                p.pid.map_or("-".into(), |pid| pid.to_string()),
                name,
                format_bit_rate(p.up_bits_per_second),
                format_bit_rate(p.down_bits_per_second),
                format_bytes(p.bytes_up),
                format_bytes(p.bytes_down),
                p.open_connections.to_string(),
            ]));
            if open {
                for c in &p.connections {
                    rows.push(
                        Row::new(vec![
                            String::new(),
                            format!("   {} -> {} {}", c.local, c.remote, c.state),
                            format_bit_rate(c.up_bits_per_second),
                            format_bit_rate(c.down_bits_per_second),
                            format_bytes(c.bytes_up),
                            format_bytes(c.bytes_down),
                            String::new(),
                        ])
                        .style(Style::default().fg(Color::DarkGray)),
                    );
                }
            }
        }
        let interfaces = snapshot.as_ref().map_or(0, |s| s.interfaces.len()).min(6) as u16;
        terminal.draw(|frame| {
            let [head, up_area, down_area, ifaces, table_area, foot] = Layout::vertical([
                Constraint::Length(1),
                Constraint::Length(4),
                Constraint::Length(4),
                Constraint::Length(interfaces + 2),
                Constraint::Min(5),
                Constraint::Length(1),
            ])
            .areas(frame.area());
            let totals = snapshot.as_ref().map_or(String::new(), |s| {
                format!(
                    "   total up {}  down {}   sort: {}",
                    format_bytes(s.bytes_up),
                    format_bytes(s.bytes_down),
                    key.name()
                )
            });
            frame.render_widget(Paragraph::new(format!("{title}{totals}")).bold(), head);
            let width = up_area.width.saturating_sub(2) as usize;
            let tail = |h: &VecDeque<u64>| -> Vec<u64> {
                h.iter()
                    .skip(h.len().saturating_sub(width))
                    .copied()
                    .collect()
            };
            for (area, label, h, color) in [
                (up_area, "up", &up, Color::Red),
                (down_area, "down", &down, Color::Blue),
            ] {
                let now = h.back().copied().unwrap_or(0) as f64;
                let data = tail(h);
                let title = format!("{label} {} (TCP payload)", format_bit_rate(now));
                frame.render_widget(super::super::tui::sparkline(title, &data, color), area);
            }
            let iface_text = snapshot.as_ref().map_or(String::new(), |s| {
                s.interfaces
                    .iter()
                    .map(|i| {
                        format!(
                            "{:<12} rx {:>15} {:>11}   tx {:>15} {:>11}",
                            i.name,
                            format_bit_rate(i.rx_bits_per_second),
                            format_bytes(i.rx_bytes),
                            format_bit_rate(i.tx_bits_per_second),
                            format_bytes(i.tx_bytes)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            frame.render_widget(
                Paragraph::new(iface_text).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title("interfaces (all protocols, headers included)"),
                ),
                ifaces,
            );
            let widths = [
                Constraint::Length(8),
                Constraint::Min(24),
                Constraint::Length(15),
                Constraint::Length(15),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(6),
            ];
            let mut state = TableState::default().with_selected(Some(selected_row));
            frame.render_stateful_widget(
                Table::new(rows.clone(), widths)
                    .header(
                        Row::new(vec![
                            "pid", "process", "up/s", "down/s", "up", "down", "conns",
                        ])
                        .bold(),
                    )
                    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
                    .block(Block::default().borders(Borders::ALL).title("processes")),
                table_area,
                &mut state,
            );
            let mut help = "q quit  s sort  ↑↓ select  enter expand  c expand all".to_string();
            if snapshot.as_ref().is_some_and(|s| !s.owners_complete) {
                help = format!("{help}   note: {NEEDS_ROOT_NOTE}");
            }
            frame.render_widget(Paragraph::new(help).fg(Color::DarkGray), foot);
        })?;
        if event::poll(TICK)? {
            if let Event::Key(k) = event::read()? {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                match k.code {
                    _ if ctrl_c => stop.cancel(),
                    KeyCode::Char('q') | KeyCode::Esc => stop.cancel(),
                    KeyCode::Char('s') => key = key.next(),
                    KeyCode::Char('c') => expand_all = !expand_all,
                    KeyCode::Up => selected = selected.saturating_sub(1),
                    KeyCode::Down => selected += 1,
                    KeyCode::Enter | KeyCode::Char(' ') => {
                        if let Some(o) = selected_owner {
                            if !expanded.remove(&o) {
                                expanded.insert(o);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}
