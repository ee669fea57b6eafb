//! Summaries of repeated measurements: pure, no clocks or sockets.

/// Count, extremes, centre and spread of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Number of values summarised.
    pub count: usize,
    /// Smallest value.
    pub min: f64,
    /// Middle value; the mean of the two middle values for an even count.
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Largest value.
    pub max: f64,
    /// Sample standard deviation (divides by n - 1); 0 for a single value.
    pub stddev: f64,
}

impl Summary {
    /// Summarises `values`, in any order; `None` for an empty slice. Every value counts, so the
    /// caller passes finite values only.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let count = values.len();
        if count == 0 {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = if count % 2 == 1 {
            sorted[count / 2]
        } else {
            (sorted[count / 2 - 1] + sorted[count / 2]) / 2.0
        };
        let mean = values.iter().sum::<f64>() / count as f64;
        let stddev = if count == 1 {
            0.0
        } else {
            let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (squares / (count - 1) as f64).sqrt()
        };
        Some(Summary {
            count,
            min: sorted[0],
            median,
            mean,
            max: sorted[count - 1],
            stddev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn known_values() {
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.count, 8);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert!(close(s.mean, 5.0));
        assert!(close(s.median, 4.5));
        // Population stddev is 2; the sample one is 2 * sqrt(8 / 7).
        assert!(close(s.stddev, 2.0 * (8.0f64 / 7.0).sqrt()), "{}", s.stddev);
        assert!((s.stddev - 2.138).abs() < 1e-3);
    }

    #[test]
    fn one_value() {
        let s = Summary::of(&[3.5]).unwrap();
        let expected = Summary {
            count: 1,
            min: 3.5,
            median: 3.5,
            mean: 3.5,
            max: 3.5,
            stddev: 0.0,
        };
        assert_eq!(s, expected);
    }

    #[test]
    fn medians_of_unsorted_input() {
        let odd = Summary::of(&[9.0, 1.0, 5.0, 3.0, 7.0]).unwrap();
        assert_eq!((odd.min, odd.median, odd.max), (1.0, 5.0, 9.0));
        assert!(close(odd.mean, 5.0));
        let even = Summary::of(&[10.0, 1.0, 4.0, 3.0]).unwrap();
        assert_eq!((even.min, even.median, even.max), (1.0, 3.5, 10.0));
        assert!(close(even.mean, 4.5));
    }

    #[test]
    fn serializes_every_field() {
        let s = Summary::of(&[1.0, 3.0]).unwrap();
        let json = serde_json::to_value(s).unwrap();
        for field in ["count", "min", "median", "mean", "max", "stddev"] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(json["median"], 2.0);
    }
}
