//! Replay scripts and what a proxy saw of them. Pure: scripts in, byte counts out.

use std::time::Duration;

use super::PhaseCost;
use crate::wire::ReplayScript;

/// The costs a script really puts on the wire: its exchanges (at least one byte each way per
/// round trip, one round trip for a phase that moves bytes) and its compute.
pub fn replayed_costs(script: &ReplayScript) -> Vec<PhaseCost> {
    script
        .phases
        .iter()
        .map(|p| {
            let (mut up, mut down, mut rounds) = (0, 0, 0);
            for (u, d) in p.exchanges() {
                up += u;
                down += d;
                rounds += 1;
            }
            PhaseCost {
                name: p.name.clone(),
                upload_bytes: up,
                download_bytes: down,
                round_trips: rounds,
                compute: Duration::from_millis(p.compute_ms),
            }
        })
        .collect()
}

/// One phase as a proxy counted it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeenPhase {
    pub name: String,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    pub round_trips: u64,
}

/// Splits a replay connection's flights (direction up?, bytes) into the script's phases.
/// The connection starts with `leading` control flights (the request and its answer) and its
/// last flight down also carries `trailing_down` bytes of results. Every exchange is one flight
/// up and one down, so the split is exact; `None` if the flights do not have that shape.
pub fn attribute(
    flights: &[(bool, u64)],
    script: &ReplayScript,
    leading: usize,
    trailing_down: u64,
) -> Option<Vec<SeenPhase>> {
    let mut rest = flights.get(leading..)?.to_vec();
    if let Some(last) = rest.last_mut() {
        if !last.0 {
            last.1 = last.1.checked_sub(trailing_down)?;
        }
    }
    let mut it = rest.into_iter();
    let mut seen = Vec::with_capacity(script.phases.len());
    for phase in &script.phases {
        let mut s = SeenPhase {
            name: phase.name.clone(),
            upload_bytes: 0,
            download_bytes: 0,
            round_trips: 0,
        };
        for _ in phase.exchanges() {
            let (up_dir, up) = it.next()?;
            let (down_dir, down) = it.next()?;
            if !up_dir || down_dir {
                return None;
            }
            s.upload_bytes += up;
            s.download_bytes += down;
            s.round_trips += 1;
        }
        seen.push(s);
    }
    it.next().is_none().then_some(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ReplayPhase;

    fn script() -> ReplayScript {
        ReplayScript {
            phases: vec![
                ReplayPhase {
                    name: "a".into(),
                    upload_bytes: 100,
                    download_bytes: 10,
                    round_trips: 2,
                    compute_ms: 5,
                },
                ReplayPhase {
                    name: "b".into(),
                    upload_bytes: 0,
                    download_bytes: 0,
                    round_trips: 0,
                    compute_ms: 7,
                },
                ReplayPhase {
                    name: "c".into(),
                    upload_bytes: 3,
                    download_bytes: 0,
                    round_trips: 0,
                    compute_ms: 0,
                },
            ],
        }
    }

    #[test]
    fn costs_are_what_the_exchanges_carry() {
        let costs = replayed_costs(&script());
        assert_eq!(
            (
                costs[0].upload_bytes,
                costs[0].download_bytes,
                costs[0].round_trips
            ),
            (100, 10, 2)
        );
        assert_eq!(costs[1].round_trips, 0);
        // Bytes without round trips still make one exchange, with a byte back.
        assert_eq!(
            (
                costs[2].upload_bytes,
                costs[2].download_bytes,
                costs[2].round_trips
            ),
            (3, 1, 1)
        );
    }

    #[test]
    fn flights_split_into_phases() {
        let flights = [
            (true, 60),  // hello + request
            (false, 30), // accepted
            (true, 50),
            (false, 5),
            (true, 50),
            (false, 5),
            (true, 3),
            (false, 1 + 80), // last answer + results
        ];
        let seen = attribute(&flights, &script(), 2, 80).unwrap();
        assert_eq!(
            (
                seen[0].upload_bytes,
                seen[0].download_bytes,
                seen[0].round_trips
            ),
            (100, 10, 2)
        );
        assert_eq!(seen[1].round_trips, 0);
        assert_eq!((seen[2].upload_bytes, seen[2].download_bytes), (3, 1));
        assert!(attribute(&flights[..7], &script(), 2, 80).is_none());
    }
}
