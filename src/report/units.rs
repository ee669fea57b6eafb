//! Parsing and formatting of sizes, durations and rates: the one place units live.
//!
//! iperf3's conventions: sizes are binary (1 KB = 1024 B), bit rates are decimal
//! (1 Mbit/s = 10^6 bit/s).

use std::fmt;
use std::time::Duration;

/// One kibibyte, printed as "KB".
pub const KIB: u64 = 1024;
/// One mebibyte, printed as "MB".
pub const MIB: u64 = 1024 * KIB;
/// One gibibyte, printed as "GB".
pub const GIB: u64 = 1024 * MIB;
/// One tebibyte, printed as "TB".
pub const TIB: u64 = 1024 * GIB;
/// Largest size any size input accepts: 1 TB (binary).
pub const MAX_SIZE: u64 = TIB;
/// Largest rate any rate input accepts: 1 Tbit/s.
pub const MAX_RATE_BPS: u64 = 1_000_000_000_000;
/// Longest duration any duration input accepts: 365 days, so deadlines computed from it
/// cannot overflow a clock.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// What kind of value a [`UnitError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// A number of bytes.
    Size,
    /// A span of time.
    Duration,
    /// A number of bits per second.
    Rate,
}

impl Quantity {
    fn name(self) -> &'static str {
        match self {
            Quantity::Size => "size",
            Quantity::Duration => "duration",
            Quantity::Rate => "rate",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Quantity::Size => {
                "use a number with an optional K, M, G or T suffix (binary, 1K = 1024), \
                 e.g. 512, 10K, 10KiB, 1.5M, 2G"
            }
            Quantity::Duration => {
                "use a number with a unit: us, ms, s, m or h (e.g. 500ms, 10s, 1.5m); \
                 a bare number is seconds"
            }
            Quantity::Rate => {
                "use a number of bits per second with an optional k, M, G suffix (decimal), \
                 e.g. 64kbit, 20Mbit, 1G"
            }
        }
    }

    fn max(self) -> &'static str {
        match self {
            Quantity::Size => "1 TB",
            Quantity::Duration => "365 days",
            Quantity::Rate => "1 Tbit/s",
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A size, duration, rate, count or ratio that could not be parsed; carries the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The input is not a number with a known unit.
    #[error("invalid {quantity} '{input}': {}", .quantity.help())]
    Invalid { quantity: Quantity, input: String },
    /// The input is a negative number.
    #[error("invalid {quantity} '{input}': {quantity}s cannot be negative")]
    Negative { quantity: Quantity, input: String },
    /// The input is zero (or rounds to zero) where zero makes no sense.
    #[error("invalid {quantity} '{input}': must be more than 0")]
    Zero { quantity: Quantity, input: String },
    /// The input is above the largest accepted value.
    #[error("invalid {quantity} '{input}': more than the maximum of {}", .quantity.max())]
    TooLarge { quantity: Quantity, input: String },
    /// The input is not a whole number in the accepted range.
    #[error("invalid count '{input}': use a whole number from {min} to {max}")]
    Count { input: String, min: u64, max: u64 },
    /// The input is not a finite number in the accepted range (`accepted` describes it, as
    /// text so the error stays `Eq`).
    #[error("invalid ratio '{input}': use {accepted}")]
    Ratio { input: String, accepted: String },
}

/// Parses a size in bytes, from 0 to [`MAX_SIZE`]: `512`, `10K`, `10KB`, `10KiB`, `1.5M`, `2G`.
/// All suffixes are binary and case-insensitive; fractions round to the nearest byte.
///
/// ```
/// use ntm::report::units::parse_size;
/// assert_eq!(parse_size("10KB"), Ok(10 * 1024));
/// assert_eq!(parse_size("1.5M"), Ok(1_572_864));
/// assert!(parse_size("10XB").unwrap_err().to_string().contains("'10XB'"));
/// ```
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let (input, bytes) = parse_quantity(s, Quantity::Size, size_bytes)?;
    let bytes = bytes.round();
    if bytes > MAX_SIZE as f64 {
        return Err(UnitError::TooLarge {
            quantity: Quantity::Size,
            input,
        });
    }
    Ok(bytes as u64)
}

/// Like [`parse_size`], but refuses sizes that are (or round to) 0.
pub fn parse_nonzero_size(s: &str) -> Result<u64, UnitError> {
    match parse_size(s)? {
        0 => Err(UnitError::Zero {
            quantity: Quantity::Size,
            input: s.trim().to_string(),
        }),
        bytes => Ok(bytes),
    }
}

/// Parses a comma-separated list of nonzero sizes, e.g. `1KB,64KB,1MB`; empty items are errors.
pub fn parse_size_list(s: &str) -> Result<Vec<u64>, UnitError> {
    s.split(',').map(parse_nonzero_size).collect()
}

/// Parses a duration of at most [`MAX_DURATION`]: `250us`, `500ms`, `1.5s`, `2m`, `1h`;
/// a bare number (`10`, `0`) is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let (input, nanos) = parse_quantity(s, Quantity::Duration, duration_nanos)?;
    let nanos = nanos.round();
    if nanos > MAX_DURATION.as_nanos() as f64 {
        return Err(UnitError::TooLarge {
            quantity: Quantity::Duration,
            input,
        });
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Parses a rate in bits per second, more than 0 and at most 1 Tbit/s: `5000`, `64kbit`,
/// `20Mbit`, `20Mbps`, `20mbit/s`, `100M`, `1.5Gbit`. Suffixes are decimal and
/// case-insensitive ("M" is always mega).
pub fn parse_rate_bps(s: &str) -> Result<u64, UnitError> {
    let (input, bps) = parse_quantity(s, Quantity::Rate, rate_bps)?;
    let bps = bps.round();
    if bps > MAX_RATE_BPS as f64 {
        return Err(UnitError::TooLarge {
            quantity: Quantity::Rate,
            input,
        });
    }
    if bps == 0.0 {
        return Err(UnitError::Zero {
            quantity: Quantity::Rate,
            input,
        });
    }
    Ok(bps as u64)
}

/// Parses a whole number from `min` to `max`, inclusive.
pub fn parse_count(s: &str, min: u64, max: u64) -> Result<u64, UnitError> {
    let input = s.trim();
    match input.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(UnitError::Count {
            input: input.to_string(),
            min,
            max,
        }),
    }
}

/// Parses a finite number from `min` to `max`, inclusive.
pub fn parse_ratio(s: &str, min: f64, max: f64) -> Result<f64, UnitError> {
    let input = s.trim();
    match input.parse::<f64>() {
        Ok(x) if x.is_finite() && (min..=max).contains(&x) => Ok(x),
        _ => {
            let example = if (min..=max).contains(&0.5) {
                0.5
            } else {
                min + (max - min) / 2.0
            };
            let accepted = format!("a number from {min} to {max}, e.g. {example}");
            Err(UnitError::Ratio {
                input: input.to_string(),
                accepted,
            })
        }
    }
}

/// Trims `s`, reports a leading `-` as negative, and converts the rest with `value_of`; returns
/// the trimmed input (for error messages) and the value, which may be infinite but is never
/// negative or NaN.
fn parse_quantity(
    s: &str,
    quantity: Quantity,
    value_of: fn(&str) -> Option<f64>,
) -> Result<(String, f64), UnitError> {
    let input = s.trim();
    let (negative, body) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let input = input.to_string();
    match value_of(body) {
        None => Err(UnitError::Invalid { quantity, input }),
        Some(_) if negative => Err(UnitError::Negative { quantity, input }),
        Some(value) => Ok((input, value)),
    }
}

/// Splits `s` into a plain decimal number (digits and at most one point: no sign, exponent,
/// NaN or infinity) and the lowercased unit after it, without surrounding spaces.
fn split_number(s: &str) -> Option<(f64, String)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(end);
    if !number.contains(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, unit.trim_start().to_ascii_lowercase()))
}

fn size_bytes(s: &str) -> Option<f64> {
    let (number, unit) = split_number(s)?;
    let multiplier = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => TIB,
        _ => return None,
    };
    Some(number * multiplier as f64)
}

fn duration_nanos(s: &str) -> Option<f64> {
    let (number, unit) = split_number(s)?;
    let nanos_per_unit = match unit.as_str() {
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "" | "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    Some(number * nanos_per_unit)
}

fn rate_bps(s: &str) -> Option<f64> {
    let (number, unit) = split_number(s)?;
    let (multiplier, per_second) = match unit.as_bytes().first() {
        Some(b'k') => (1e3, &unit[1..]),
        Some(b'm') => (1e6, &unit[1..]),
        Some(b'g') => (1e9, &unit[1..]),
        Some(b't') => (1e12, &unit[1..]),
        _ => (1.0, unit.as_str()),
    };
    // "MB/s" and "MBps" conventionally mean bytes: refuse them rather than misread by 8x.
    let as_typed = s.get(s.len() - per_second.len()..).unwrap_or_default();
    match per_second {
        "bps" | "b/s" if as_typed.starts_with('B') => None,
        "" | "bit" | "bits" | "bps" | "bit/s" | "b/s" => Some(number * multiplier),
        _ => None,
    }
}

/// Formats a byte count with two decimals in binary units: "512.00 B", "1.00 KB", "1.50 GB".
///
/// ```
/// use ntm::report::units::format_bytes;
/// assert_eq!(format_bytes(512), "512.00 B");
/// assert_eq!(format_bytes(35_400_000), "33.76 MB");
/// ```
pub fn format_bytes(bytes: u64) -> String {
    format_bytes_f64(bytes as f64)
}

/// Like [`format_bytes`], for fractional byte counts such as averages.
pub fn format_bytes_f64(bytes: f64) -> String {
    scaled(bytes, 1024.0, &["B", "KB", "MB", "GB", "TB"])
}

/// Formats bytes per second in binary units: "952.38 B/s", "1.86 KB/s", "1.10 GB/s".
pub fn format_byte_rate(bytes_per_second: f64) -> String {
    format!("{}/s", format_bytes_f64(bytes_per_second))
}

/// Formats bits per second in decimal units: "950.00 bit/s", "64.00 Kbit/s", "9.41 Gbit/s".
pub fn format_bit_rate(bits_per_second: f64) -> String {
    scaled(
        bits_per_second,
        1000.0,
        &["bit/s", "Kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"],
    )
}

/// Formats a duration with two decimals: "12.34µs" below 1 ms, "538.21ms" below 1 s, else "2.35s".
pub fn format_duration(d: Duration) -> String {
    let seconds = d.as_secs_f64();
    if d < Duration::from_millis(1) {
        format!("{:.2}µs", seconds * 1e6)
    } else if d < Duration::from_secs(1) {
        format!("{:.2}ms", seconds * 1e3)
    } else {
        format!("{seconds:.2}s")
    }
}

/// Divides `value` by `step` until it is below `step` or the units run out.
fn scaled(mut value: f64, step: f64, units: &[&str]) -> String {
    let mut unit = 0;
    while value.abs() >= step && unit + 1 < units.len() {
        value /= step;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(result: Result<impl fmt::Debug, UnitError>) -> String {
        result.expect_err("input should be refused").to_string()
    }

    #[test]
    fn documented_sizes_parse_exactly() {
        let cases = [
            ("512", 512),
            ("0", 0),
            ("10K", 10 * KIB),
            ("10KB", 10 * KIB),
            ("10KiB", 10 * KIB),
            ("10kib", 10 * KIB),
            ("1.5M", 3 * MIB / 2),
            ("2G", 2 * GIB),
            ("1T", TIB),
            ("64B", 64),
            ("  4 MB ", 4 * MIB),
            ("1.00 KB", KIB),
            (".5K", 512),
            ("1.5", 2),
        ];
        for (input, bytes) in cases {
            assert_eq!(parse_size(input), Ok(bytes), "{input}");
        }
    }

    #[test]
    fn size_errors_quote_input_and_say_what_is_accepted() {
        let help = "use a number with an optional K, M, G or T suffix (binary, 1K = 1024), \
                    e.g. 512, 10K, 10KiB, 1.5M, 2G";
        for bad in [
            "10XB", "", "abc", "NaN", "inf", "1e3", "1.2.3", "K", ".", "+5", "10 K B",
        ] {
            assert_eq!(
                message(parse_size(bad)),
                format!("invalid size '{bad}': {help}")
            );
        }
        assert_eq!(
            message(parse_size("-5")),
            "invalid size '-5': sizes cannot be negative"
        );
        assert_eq!(
            message(parse_size("-1.5M")),
            "invalid size '-1.5M': sizes cannot be negative"
        );
        assert_eq!(
            message(parse_size("2T")),
            "invalid size '2T': more than the maximum of 1 TB"
        );
        let huge = "99999999999999999999T";
        assert_eq!(
            message(parse_size(huge)),
            format!("invalid size '{huge}': more than the maximum of 1 TB")
        );
        let digits = "9".repeat(400);
        assert!(message(parse_size(&digits)).contains("more than the maximum"));
        assert_eq!(
            message(parse_nonzero_size("0")),
            "invalid size '0': must be more than 0"
        );
        assert_eq!(
            message(parse_nonzero_size("0.4")),
            "invalid size '0.4': must be more than 0"
        );
    }

    #[test]
    fn size_boundaries() {
        assert_eq!(parse_size(&MAX_SIZE.to_string()), Ok(MAX_SIZE));
        assert!(matches!(
            parse_size(&(MAX_SIZE + 1).to_string()),
            Err(UnitError::TooLarge { .. })
        ));
        assert_eq!(parse_nonzero_size("1"), Ok(1));
        assert_eq!(parse_nonzero_size("1TB"), Ok(MAX_SIZE));
    }

    #[test]
    fn size_lists() {
        assert_eq!(
            parse_size_list("1KB,64KB,1MB"),
            Ok(vec![KIB, 64 * KIB, MIB])
        );
        assert_eq!(parse_size_list(" 1K , 2K "), Ok(vec![KIB, 2 * KIB]));
        assert!(message(parse_size_list("1K,,2K")).starts_with("invalid size '':"));
        assert!(message(parse_size_list("1K,")).starts_with("invalid size '':"));
        assert_eq!(
            message(parse_size_list("1K,0")),
            "invalid size '0': must be more than 0"
        );
    }

    #[test]
    fn sizes_round_trip_through_format() {
        let mut sizes = vec![0, 1, 1023];
        for shift in 0..=40 {
            let power = 1u64 << shift;
            sizes.push(power);
            for numerator in [3, 5, 7, 9, 15] {
                sizes.push(power * numerator / 4);
            }
        }
        for bytes in sizes.into_iter().filter(|&b| b <= MAX_SIZE) {
            let text = format_bytes(bytes);
            let parsed = parse_size(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            // Two decimals of the printed unit: off by at most 0.5% (plus the rounding byte).
            let error = parsed.abs_diff(bytes) as f64;
            assert!(
                error <= bytes as f64 * 0.005 + 0.5,
                "{bytes} -> {text} -> {parsed}"
            );
        }
    }

    #[test]
    fn format_bytes_examples() {
        assert_eq!(format_bytes(0), "0.00 B");
        assert_eq!(format_bytes(512), "512.00 B");
        assert_eq!(format_bytes(1023), "1023.00 B");
        assert_eq!(format_bytes(1024), "1.00 KB");
        assert_eq!(format_bytes(10 * MIB), "10.00 MB");
        assert_eq!(format_bytes(3 * GIB / 2), "1.50 GB");
        assert_eq!(format_bytes(2 * TIB), "2.00 TB");
        assert_eq!(format_bytes(2048 * TIB), "2048.00 TB");
        assert_eq!(format_bytes_f64(1536.0), "1.50 KB");
        assert_eq!(format_byte_rate(952.38), "952.38 B/s");
        assert_eq!(format_byte_rate(1900.0), "1.86 KB/s");
        assert_eq!(format_byte_rate(1.1 * GIB as f64), "1.10 GB/s");
    }

    #[test]
    fn format_bit_rate_examples() {
        assert_eq!(format_bit_rate(950.0), "950.00 bit/s");
        assert_eq!(format_bit_rate(999.0), "999.00 bit/s");
        assert_eq!(format_bit_rate(1000.0), "1.00 Kbit/s");
        assert_eq!(format_bit_rate(64_000.0), "64.00 Kbit/s");
        assert_eq!(format_bit_rate(9.41e9), "9.41 Gbit/s");
        assert_eq!(format_bit_rate(1.2e12), "1.20 Tbit/s");
    }

    #[test]
    fn documented_durations_parse_exactly() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("1.5s", Duration::from_millis(1500)),
            ("1.5m", Duration::from_secs(90)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("10", Duration::from_secs(10)),
            ("0", Duration::ZERO),
            (" 2 S ", Duration::from_secs(2)),
            ("0.1s", Duration::from_millis(100)),
            ("365h", Duration::from_secs(365 * 3600)),
        ];
        for (input, duration) in cases {
            assert_eq!(parse_duration(input), Ok(duration), "{input}");
        }
    }

    #[test]
    fn duration_errors() {
        let help = "use a number with a unit: us, ms, s, m or h (e.g. 500ms, 10s, 1.5m); \
                    a bare number is seconds";
        for bad in ["abc", "", "10x", "5d", "1e3s", "inf", "NaN", "ms", "1.5.s"] {
            assert_eq!(
                message(parse_duration(bad)),
                format!("invalid duration '{bad}': {help}")
            );
        }
        assert_eq!(
            message(parse_duration("-1s")),
            "invalid duration '-1s': durations cannot be negative"
        );
        assert_eq!(
            message(parse_duration("8761h")),
            "invalid duration '8761h': more than the maximum of 365 days"
        );
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert!(matches!(
            parse_duration("99999999999999999999999h"),
            Err(UnitError::TooLarge { .. })
        ));
    }

    #[test]
    fn durations_round_trip_through_format() {
        for nanos in [
            1_000,
            12_340,
            999_000,
            1_000_000,
            538_210_000,
            2_350_000_000,
            86_400e9 as u64,
        ] {
            let d = Duration::from_nanos(nanos);
            let text = format_duration(d);
            let parsed = parse_duration(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let error = (parsed.as_secs_f64() - d.as_secs_f64()).abs();
            assert!(error <= d.as_secs_f64() * 0.005, "{text} -> {parsed:?}");
        }
    }

    #[test]
    fn format_duration_examples() {
        assert_eq!(format_duration(Duration::from_nanos(12_340)), "12.34µs");
        assert_eq!(format_duration(Duration::from_nanos(999_990)), "999.99µs");
        assert_eq!(format_duration(Duration::from_millis(1)), "1.00ms");
        assert_eq!(format_duration(Duration::from_micros(538_210)), "538.21ms");
        assert_eq!(format_duration(Duration::from_secs(1)), "1.00s");
        assert_eq!(format_duration(Duration::from_millis(2350)), "2.35s");
        assert_eq!(format_duration(Duration::from_secs(125)), "125.00s");
    }

    #[test]
    fn documented_rates_parse_exactly() {
        let cases = [
            ("64kbit", 64_000),
            ("64Kbit", 64_000),
            ("20Mbit", 20_000_000),
            ("1G", 1_000_000_000),
            ("1.5Gbit", 1_500_000_000),
            ("100M", 100_000_000),
            ("100m", 100_000_000),
            ("20Mbps", 20_000_000),
            ("20mbit/s", 20_000_000),
            ("20Mb/s", 20_000_000),
            ("20 Mbits", 20_000_000),
            ("20MBit", 20_000_000),
            ("5000", 5000),
            ("5000bps", 5000),
            ("1T", MAX_RATE_BPS),
            ("1.5", 2),
        ];
        for (input, bps) in cases {
            assert_eq!(parse_rate_bps(input), Ok(bps), "{input}");
        }
    }

    #[test]
    fn rate_errors() {
        let help = "use a number of bits per second with an optional k, M, G suffix (decimal), \
                    e.g. 64kbit, 20Mbit, 1G";
        for bad in [
            "5Xbit", "", "fast", "1e6", "20MB/s", "20MB/S", "20MBps", "20MB", "20Mbyte", "k",
        ] {
            assert_eq!(
                message(parse_rate_bps(bad)),
                format!("invalid rate '{bad}': {help}")
            );
        }
        assert_eq!(
            message(parse_rate_bps("-5M")),
            "invalid rate '-5M': rates cannot be negative"
        );
        assert_eq!(
            message(parse_rate_bps("0")),
            "invalid rate '0': must be more than 0"
        );
        assert_eq!(
            message(parse_rate_bps("0.1")),
            "invalid rate '0.1': must be more than 0"
        );
        assert_eq!(
            message(parse_rate_bps("1001G")),
            "invalid rate '1001G': more than the maximum of 1 Tbit/s"
        );
    }

    #[test]
    fn rates_round_trip_through_format() {
        for shift in 0..40 {
            for numerator in [4, 5, 7, 9] {
                let bps = (1u64 << shift) * numerator / 4;
                if bps == 0 || bps > MAX_RATE_BPS {
                    continue;
                }
                let text = format_bit_rate(bps as f64);
                let parsed = parse_rate_bps(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                let error = parsed.abs_diff(bps) as f64;
                assert!(
                    error <= bps as f64 * 0.005 + 0.5,
                    "{bps} -> {text} -> {parsed}"
                );
            }
        }
    }

    #[test]
    fn counts_and_ratios() {
        assert_eq!(parse_count(" 10 ", 1, 1_000_000), Ok(10));
        assert_eq!(parse_count("1000000", 1, 1_000_000), Ok(1_000_000));
        for bad in ["x", "0", "1000001", "-1", "1.5", ""] {
            assert_eq!(
                message(parse_count(bad, 1, 1_000_000)),
                format!("invalid count '{bad}': use a whole number from 1 to 1000000")
            );
        }
        assert_eq!(parse_ratio("0.5", 0.0, 1000.0), Ok(0.5));
        assert_eq!(parse_ratio("1000", 0.0, 1000.0), Ok(1000.0));
        for bad in ["x", "-0.1", "1000.5", "NaN", "inf", ""] {
            assert_eq!(
                message(parse_ratio(bad, 0.0, 1000.0)),
                format!("invalid ratio '{bad}': use a number from 0 to 1000, e.g. 0.5")
            );
        }
        assert_eq!(
            message(parse_ratio("0", 1.0, 10.0)),
            "invalid ratio '0': use a number from 1 to 10, e.g. 5.5"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_size(&s);
            let _ = parse_size_list(&s);
            let _ = parse_duration(&s);
            let _ = parse_rate_bps(&s);
        }

        #[test]
        fn number_like_inputs_never_panic(s in "-?[0-9.]{0,30} ?[a-zA-Zµ/]{0,6}") {
            let _ = parse_size(&s);
            let _ = parse_duration(&s);
            let _ = parse_rate_bps(&s);
        }
    }
}
