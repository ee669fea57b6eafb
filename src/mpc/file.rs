//! Protocol files: the TOML form of a [`Protocol`], so a team can describe its own MPC
//! protocol. Every error names the field and the line. The schema:
//!
//! ```toml
//! name = "my-protocol"          # required
//! about = "one line"            # optional
//! source = "where the numbers come from"   # optional
//!
//! [params]                      # optional: named numbers, usable in any value below
//! and_gates = 6400
//! table_bytes = "32 * and_gates"   # a string is arithmetic over numbers and params
//!
//! [[phase]]                     # one or more, run in order
//! name = "garble"               # required, unique
//! upload = "table_bytes"        # bytes Prover -> Verifier (default 0)
//! download = { constant = 1000, per_recv = 2 }   # bytes Verifier -> Prover (default 0)
//! round_trips = 1               # default 0; rounded to a whole number
//! compute_seconds = 0.05        # default 0
//! ramps = 1                     # cold TCP slow starts per direction (default 1)
//! overlap = 0                   # 0..1, transfer/wait concurrency (default 0)
//! ```
//!
//! A value is a number, an expression string, or a table with any of `constant`, `per_sent`,
//! `per_recv`, `per_max_sent`, `per_max_recv` (per byte of the request, the response, and
//! their configured limits) and `steps = { over = "recv", points = [[x, y], ...] }`
//! (a piecewise-linear addition, held at the end values outside the points).

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::expr;
use super::formula::{Formula, Steps, Var};
use super::{Phase, Protocol, ProtocolError};

type Value<'a> = Spanned<DeValue<'a>>;

struct Ctx<'t, 'a> {
    text: &'t str,
    params: HashMap<String, &'a Value<'t>>,
    resolved: HashMap<String, f64>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn field_error(
    text: &str,
    offset: usize,
    field: &str,
    message: impl Into<String>,
) -> ProtocolError {
    ProtocolError::Field {
        field: field.to_string(),
        line: line_of(text, offset),
        message: message.into(),
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    v.type_str()
}

/// Checks a table's keys against `allowed`.
fn known_keys(
    text: &str,
    table: &DeTable<'_>,
    path: &str,
    allowed: &[&str],
) -> Result<(), ProtocolError> {
    for (k, _) in table.iter() {
        let key: &str = k.get_ref();
        if !allowed.contains(&key) {
            let at = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            return Err(field_error(
                text,
                k.span().start,
                &at,
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn get<'x, 't>(table: &'x DeTable<'t>, key: &str) -> Option<&'x Value<'t>> {
    table
        .iter()
        .find(|(k, _)| {
            let s: &str = k.get_ref();
            s == key
        })
        .map(|(_, v)| v)
}

fn string<'x>(text: &str, v: &'x Value<'_>, field: &str) -> Result<&'x str, ProtocolError> {
    v.get_ref().as_str().ok_or_else(|| {
        field_error(
            text,
            v.span().start,
            field,
            format!("expected a string, got {}", type_name(v.get_ref())),
        )
    })
}

impl<'t, 'a> Ctx<'t, 'a> {
    /// A number, or an expression string over the parameters.
    fn number(&mut self, v: &Value<'t>, field: &str) -> Result<f64, ProtocolError> {
        let at = v.span().start;
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map(|i| i as f64)
                .map_err(|_| format!("integer {} is out of range", i.as_str())),
            DeValue::Float(f) => f
                .as_str()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("{} is not a finite number", f.as_str())),
            DeValue::String(s) => {
                let s = s.to_string();
                let mut stack = Vec::new();
                self.eval(&s, &mut stack)
            }
            other => Err(format!(
                "expected a number or an expression string, got {}",
                type_name(other)
            )),
        };
        n.map_err(|m| field_error(self.text, at, field, m))
    }

    fn eval(&mut self, s: &str, stack: &mut Vec<String>) -> Result<f64, String> {
        let mut lookup = |name: &str| self.param(name, stack);
        expr::eval(s, &mut lookup)
    }

    fn param(&mut self, name: &str, stack: &mut Vec<String>) -> Result<f64, String> {
        if let Some(v) = self.resolved.get(name) {
            return Ok(*v);
        }
        let Some(&v) = self.params.get(name) else {
            let mut known: Vec<&str> = self.params.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(if known.is_empty() {
                format!("unknown parameter '{name}' (the file has no [params])")
            } else {
                format!(
                    "unknown parameter '{name}'; [params] has: {}",
                    known.join(", ")
                )
            });
        };
        if stack.iter().any(|s| s == name) {
            return Err(format!(
                "parameter '{name}' refers to itself ({} -> {name})",
                stack.join(" -> ")
            ));
        }
        stack.push(name.to_string());
        let value = match v.get_ref() {
            DeValue::String(s) => {
                let s = s.to_string();
                self.eval(&s, stack)
            }
            _ => self
                .number(v, &format!("params.{name}"))
                .map_err(|e| e.to_string()),
        };
        stack.pop();
        let value = value.map_err(|m| format!("in parameter '{name}': {m}"))?;
        self.resolved.insert(name.to_string(), value);
        Ok(value)
    }

    fn formula(&mut self, v: &Value<'t>, field: &str) -> Result<Formula, ProtocolError> {
        let Some(table) = v.get_ref().as_table() else {
            if matches!(
                v.get_ref(),
                DeValue::Integer(_) | DeValue::Float(_) | DeValue::String(_)
            ) {
                return Ok(Formula::constant(self.number(v, field)?));
            }
            return Err(field_error(
                self.text,
                v.span().start,
                field,
                format!(
                    "expected a number, an expression string or a table, got {}",
                    type_name(v.get_ref())
                ),
            ));
        };
        known_keys(
            self.text,
            table,
            field,
            &[
                "constant",
                "per_sent",
                "per_recv",
                "per_max_sent",
                "per_max_recv",
                "steps",
            ],
        )?;
        let mut f = Formula::default();
        if let Some(c) = get(table, "constant") {
            f.constant = self.number(c, &format!("{field}.constant"))?;
        }
        for (var, name) in Var::ALL {
            let key = format!("per_{name}");
            if let Some(c) = get(table, &key) {
                *f.coefficient_mut(var) = self.number(c, &format!("{field}.{key}"))?;
            }
        }
        if let Some(s) = get(table, "steps") {
            f.steps = Some(self.steps(s, &format!("{field}.steps"))?);
        }
        Ok(f)
    }

    fn steps(&mut self, v: &Value<'t>, field: &str) -> Result<Steps, ProtocolError> {
        let text = self.text;
        let Some(table) = v.get_ref().as_table() else {
            return Err(field_error(
                text,
                v.span().start,
                field,
                "expected a table with `over` and `points`",
            ));
        };
        known_keys(text, table, field, &["over", "points"])?;
        let over_v = get(table, "over")
            .ok_or_else(|| field_error(text, v.span().start, field, "missing field `over`"))?;
        let over_s = string(text, over_v, &format!("{field}.over"))?;
        let over = Var::ALL
            .iter()
            .find(|(_, n)| *n == over_s)
            .map(|(v, _)| *v)
            .ok_or_else(|| {
                field_error(
                    text,
                    over_v.span().start,
                    &format!("{field}.over"),
                    format!("unknown size '{over_s}'; use sent, recv, max_sent or max_recv"),
                )
            })?;
        let points_v = get(table, "points")
            .ok_or_else(|| field_error(text, v.span().start, field, "missing field `points`"))?;
        let pf = format!("{field}.points");
        let list = points_v.get_ref().as_array().ok_or_else(|| {
            field_error(
                text,
                points_v.span().start,
                &pf,
                "expected an array of [x, y] pairs",
            )
        })?;
        let mut points = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let at = format!("{pf}[{i}]");
            let pair = p
                .get_ref()
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| field_error(text, p.span().start, &at, "expected a pair [x, y]"))?;
            let x = self.number(&pair[0], &at)?;
            let y = self.number(&pair[1], &at)?;
            if let Some(&(px, _)) = points.last() {
                if x <= px {
                    return Err(field_error(
                        text,
                        p.span().start,
                        &at,
                        format!("x must increase: {x} after {px}"),
                    ));
                }
            }
            points.push((x, y));
        }
        if points.is_empty() {
            return Err(field_error(
                text,
                points_v.span().start,
                &pf,
                "needs at least one point",
            ));
        }
        Ok(Steps { over, points })
    }

    fn phase(&mut self, v: &Value<'t>, i: usize) -> Result<Phase, ProtocolError> {
        let text = self.text;
        let path = format!("phase[{i}]");
        let table = v.get_ref().as_table().ok_or_else(|| {
            field_error(text, v.span().start, &path, "expected a table ([[phase]])")
        })?;
        known_keys(
            text,
            table,
            &path,
            &[
                "name",
                "upload",
                "download",
                "round_trips",
                "compute_seconds",
                "ramps",
                "overlap",
            ],
        )?;
        let name_v = get(table, "name")
            .ok_or_else(|| field_error(text, v.span().start, &path, "missing field `name`"))?;
        let name = string(text, name_v, &format!("{path}.name"))?.to_string();
        let mut formula = |key: &str| -> Result<Formula, ProtocolError> {
            match get(table, key) {
                Some(f) => self.formula(f, &format!("{path}.{key}")),
                None => Ok(Formula::default()),
            }
        };
        let upload = formula("upload")?;
        let download = formula("download")?;
        let round_trips = formula("round_trips")?;
        let compute_seconds = formula("compute_seconds")?;
        let mut scalar = |key: &str, default: f64, ok: fn(f64) -> bool, what: &str| {
            let Some(s) = get(table, key) else {
                return Ok(default);
            };
            let field = format!("{path}.{key}");
            let x = self.number(s, &field)?;
            if ok(x) {
                Ok(x)
            } else {
                Err(field_error(
                    text,
                    s.span().start,
                    &field,
                    format!("must be {what}, got {x}"),
                ))
            }
        };
        let ramps = scalar("ramps", 1.0, |x| x >= 0.0, "0 or more")?;
        let overlap = scalar(
            "overlap",
            0.0,
            |x| (0.0..=1.0).contains(&x),
            "between 0 and 1",
        )?;
        Ok(Phase {
            name,
            upload,
            download,
            round_trips,
            compute_seconds,
            ramps,
            overlap,
        })
    }
}

impl Protocol {
    /// Parses a protocol file (schema in [`super::file`]'s documentation and in the templates
    /// under `protocols/`). Errors name the field and the line.
    pub fn from_toml(text: &str) -> Result<Protocol, ProtocolError> {
        parse(text)
    }
}

/// Parses a protocol file (see the module documentation for the schema).
pub(crate) fn parse(text: &str) -> Result<Protocol, ProtocolError> {
    let doc = DeTable::parse(text).map_err(|e| ProtocolError::Syntax {
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    let root = doc.get_ref();
    known_keys(
        text,
        root,
        "",
        &["name", "about", "source", "params", "phase"],
    )?;
    let name = match get(root, "name") {
        Some(v) => string(text, v, "name")?.to_string(),
        None => return Err(field_error(text, 0, "name", "missing field `name`")),
    };
    let opt = |key: &str| -> Result<String, ProtocolError> {
        get(root, key).map_or(Ok(String::new()), |v| {
            string(text, v, key).map(str::to_string)
        })
    };
    let about = opt("about")?;
    let source = opt("source")?;
    let mut params = HashMap::new();
    if let Some(p) = get(root, "params") {
        let table = p.get_ref().as_table().ok_or_else(|| {
            field_error(
                text,
                p.span().start,
                "params",
                "expected a table ([params])",
            )
        })?;
        for (k, v) in table.iter() {
            let key: &str = k.get_ref();
            params.insert(key.to_string(), v);
        }
    }
    let mut ctx = Ctx {
        text,
        params,
        resolved: HashMap::new(),
    };
    // Every parameter is checked, even unused ones, so a typo cannot hide.
    let mut names: Vec<String> = ctx.params.keys().cloned().collect();
    names.sort();
    for name in names {
        let v = ctx.params[&name];
        let mut stack = Vec::new();
        ctx.param(&name, &mut stack)
            .map_err(|m| field_error(text, v.span().start, &format!("params.{name}"), m))?;
    }
    let phases_v = get(root, "phase").ok_or_else(|| {
        field_error(
            text,
            0,
            "phase",
            "missing: a protocol needs at least one [[phase]]",
        )
    })?;
    let list = phases_v.get_ref().as_array().ok_or_else(|| {
        field_error(
            text,
            phases_v.span().start,
            "phase",
            "expected [[phase]] tables",
        )
    })?;
    let mut phases = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let phase = ctx.phase(v, i)?;
        if phases.iter().any(|p: &Phase| p.name == phase.name) {
            return Err(field_error(
                text,
                v.span().start,
                &format!("phase[{i}].name"),
                format!("duplicate phase name '{}'", phase.name),
            ));
        }
        phases.push(phase);
    }
    if phases.is_empty() {
        return Err(field_error(
            text,
            phases_v.span().start,
            "phase",
            "a protocol needs at least one phase",
        ));
    }
    Protocol::new(name, about, source, phases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::Workload;

    const GOOD: &str = r#"
name = "t"
about = "a test"
[params]
gates = 6400
table = "32 * gates"
[[phase]]
name = "a"
upload = { constant = "table", per_sent = 2, steps = { over = "max_recv", points = [[0, 0], [100, 50]] } }
download = 7
round_trips = "1 + 1"
compute_seconds = 0.5
[[phase]]
name = "b"
ramps = 0
overlap = 0.25
"#;

    #[test]
    fn parses_the_schema() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.name(), "t");
        assert_eq!(p.about(), "a test");
        let c = p.phases(&Workload::new(10, 50));
        assert_eq!(c[0].upload_bytes, 204_800 + 20 + 25);
        assert_eq!(c[0].download_bytes, 7);
        assert_eq!(c[0].round_trips, 2);
        assert_eq!(c[0].compute.as_millis(), 500);
        assert_eq!(c[1].upload_bytes, 0);
        assert_eq!(p.phase_specs()[1].overlap, 0.25);
        assert_eq!(p.phase_specs()[0].ramps, 1.0);
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field_and_the_line() {
        let e = err("name = \"t\"\n[[phase]]\nname = \"a\"\nuplod = 3\n");
        assert!(
            e.starts_with("line 4: phase[0].uplod: unknown field"),
            "{e}"
        );
        let e = err("name = \"t\"\n[[phase]]\nname = \"a\"\nupload = \"3 * gatez\"\n");
        assert!(
            e.starts_with("line 4: phase[0].upload: unknown parameter 'gatez'"),
            "{e}"
        );
        let e = err("name = \"t\"\n[[phase]]\nname = \"a\"\noverlap = 1.5\n");
        assert!(
            e.starts_with("line 4: phase[0].overlap: must be between 0 and 1"),
            "{e}"
        );
        let e = err("name = \"t\"\n[[phase]]\nname = \"a\"\ndownload = true\n");
        assert!(
            e.contains("line 4: phase[0].download: expected a number"),
            "{e}"
        );
        let e = err("name = \"t\"\n[[phase]]\nupload = 1\n");
        assert!(e.contains("phase[0]: missing field `name`"), "{e}");
        let e = err("name = \"t\"\n");
        assert!(e.contains("phase: missing"), "{e}");
        let e = err("[[phase]]\nname = \"a\"\n");
        assert!(e.contains("name: missing field"), "{e}");
        let e = err("name = \"t\"\n[params]\na = \"b\"\nb = \"a + 1\"\n[[phase]]\nname = \"x\"\n");
        assert!(e.contains("refers to itself"), "{e}");
        let e = err("name = \"t\"\n[[phase]]\nname = \"a\"\nupload = { steps = { over = \"size\", points = [[0, 1]] } }\n");
        assert!(
            e.contains("line 4: phase[0].upload.steps.over: unknown size 'size'"),
            "{e}"
        );
        let e = err("name = \"t\"\n[[phase]]\nname = \"a\"\n[[phase]]\nname = \"a\"\n");
        assert!(e.contains("duplicate phase name 'a'"), "{e}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = err("name = \"t\"\n\n[[phase]\nname = 1\n");
        assert!(e.starts_with("line 3: "), "{e}");
    }
}
