//! The one shape every per-phase quantity takes (bytes, round trips, compute seconds): a
//! constant, plus coefficients times the workload's sizes, plus an optional piecewise-linear
//! correction over one size.

use serde::Serialize;

use super::Workload;

/// A size a [`Formula`] can depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Var {
    /// Plain bytes the Prover sends to the server (the request).
    Sent,
    /// Plain bytes the Prover receives from the server (the response).
    Recv,
    /// The configured limit on bytes sent (what a protocol preprocesses for).
    MaxSent,
    /// The configured limit on bytes received.
    MaxRecv,
}

impl Var {
    /// Every variable with its name in protocol files.
    pub const ALL: [(Var, &'static str); 4] = [
        (Var::Sent, "sent"),
        (Var::Recv, "recv"),
        (Var::MaxSent, "max_sent"),
        (Var::MaxRecv, "max_recv"),
    ];

    /// The name used in protocol files: `sent`, `recv`, `max_sent` or `max_recv`.
    pub fn name(self) -> &'static str {
        Var::ALL
            .iter()
            .find(|(v, _)| *v == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }

    /// The variable's value for a workload, in bytes.
    pub fn value(self, w: &Workload) -> f64 {
        (match self {
            Var::Sent => w.sent_bytes,
            Var::Recv => w.recv_bytes,
            Var::MaxSent => w.max_sent_bytes(),
            Var::MaxRecv => w.max_recv_bytes(),
        }) as f64
    }
}

/// A piecewise-linear function of one variable through `points` (sorted by x), held at the
/// end values outside them. Used where measured costs move in steps (TLSNotary allocates its
/// oblivious-transfer and zero-knowledge batches in blocks) that no straight line follows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Steps {
    pub over: Var,
    pub points: Vec<(f64, f64)>,
}

impl Steps {
    /// The interpolated value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        let p = &self.points;
        match p.len() {
            0 => 0.0,
            _ if x <= p[0].0 => p[0].1,
            n if x >= p[n - 1].0 => p[n - 1].1,
            _ => {
                let i = p.partition_point(|&(px, _)| px <= x);
                let ((x0, y0), (x1, y1)) = (p[i - 1], p[i]);
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
        }
    }
}

/// `constant + per_sent*sent + per_recv*recv + per_max_sent*max_sent + per_max_recv*max_recv
/// + steps(x)`, all in the quantity's unit (bytes, round trips or seconds) per byte.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Formula {
    pub constant: f64,
    pub per_sent: f64,
    pub per_recv: f64,
    pub per_max_sent: f64,
    pub per_max_recv: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Steps>,
}

impl Formula {
    /// A formula that does not depend on the workload.
    pub fn constant(value: f64) -> Formula {
        Formula {
            constant: value,
            ..Formula::default()
        }
    }

    /// The coefficient of `var`.
    pub fn coefficient(&self, var: Var) -> f64 {
        match var {
            Var::Sent => self.per_sent,
            Var::Recv => self.per_recv,
            Var::MaxSent => self.per_max_sent,
            Var::MaxRecv => self.per_max_recv,
        }
    }

    /// Mutable access to the coefficient of `var`.
    pub fn coefficient_mut(&mut self, var: Var) -> &mut f64 {
        match var {
            Var::Sent => &mut self.per_sent,
            Var::Recv => &mut self.per_recv,
            Var::MaxSent => &mut self.per_max_sent,
            Var::MaxRecv => &mut self.per_max_recv,
        }
    }

    /// The formula's value for a workload, not clamped.
    pub fn eval(&self, w: &Workload) -> f64 {
        let linear: f64 = Var::ALL
            .iter()
            .map(|&(v, _)| self.coefficient(v) * v.value(w))
            .sum();
        let steps = self.steps.as_ref().map_or(0.0, |s| s.at(s.over.value(w)));
        self.constant + linear + steps
    }

    /// Every number in the formula, for validation.
    pub(crate) fn numbers(&self) -> impl Iterator<Item = f64> + '_ {
        [
            self.constant,
            self.per_sent,
            self.per_recv,
            self.per_max_sent,
            self.per_max_recv,
        ]
        .into_iter()
        .chain(
            self.steps
                .iter()
                .flat_map(|s| s.points.iter().flat_map(|&(x, y)| [x, y])),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(sent: u64, recv: u64) -> Workload {
        Workload::new(sent, recv)
    }

    #[test]
    fn linear_terms_add_up() {
        let f = Formula {
            constant: 10.0,
            per_sent: 2.0,
            per_recv: 3.0,
            per_max_sent: 5.0,
            per_max_recv: 7.0,
            steps: None,
        };
        let mut work = w(1, 1);
        assert_eq!(f.eval(&work), 10.0 + 2.0 + 3.0 + 5.0 + 7.0);
        work.max_recv = Some(100);
        assert_eq!(f.eval(&work), 10.0 + 2.0 + 3.0 + 5.0 + 700.0);
    }

    #[test]
    fn steps_interpolate_and_hold_at_the_ends() {
        let s = Steps {
            over: Var::Recv,
            points: vec![(1000.0, 0.0), (2000.0, 100.0), (4000.0, 100.0)],
        };
        assert_eq!(s.at(0.0), 0.0);
        assert_eq!(s.at(1500.0), 50.0);
        assert_eq!(s.at(2000.0), 100.0);
        assert_eq!(s.at(3000.0), 100.0);
        assert_eq!(s.at(1e9), 100.0);
        let f = Formula {
            steps: Some(s),
            ..Formula::constant(1.0)
        };
        assert_eq!(f.eval(&w(0, 1500)), 51.0);
    }
}
