//! Arithmetic in protocol files: `"32 * and_gates"`, `"(parties - 1) * rounds * msg_bytes"`.
//! Numbers, named parameters, `+ - * / ^` and parentheses; `^` binds tightest and to the right.

/// Evaluates `text`, looking names up with `lookup`. Errors say what is wrong and where.
pub(crate) fn eval(
    text: &str,
    lookup: &mut dyn FnMut(&str) -> Result<f64, String>,
) -> Result<f64, String> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
        lookup,
    };
    let v = p.sum()?;
    if let Some(t) = tokens.get(p.pos) {
        return Err(format!("unexpected '{}' in expression '{text}'", t.show()));
    }
    if !v.is_finite() {
        return Err(format!("expression '{text}' is not a finite number"));
    }
    Ok(v)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Name(String),
    Op(char),
}

impl Token {
    fn show(&self) -> String {
        match self {
            Token::Num(v) => v.to_string(),
            Token::Name(n) => n.clone(),
            Token::Op(c) => c.to_string(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/^()".contains(c) {
            out.push(Token::Op(c));
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '_'
                    || ((chars[i] == '+' || chars[i] == '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
            let v: f64 = s
                .parse()
                .map_err(|_| format!("invalid number '{s}' in expression '{text}'"))?;
            out.push(Token::Num(v));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Name(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected '{c}' in expression '{text}'"));
        }
    }
    if out.is_empty() {
        return Err("empty expression".into());
    }
    Ok(out)
}

struct Parser<'a, 'l> {
    tokens: &'a [Token],
    pos: usize,
    lookup: &'l mut dyn FnMut(&str) -> Result<f64, String>,
}

impl Parser<'_, '_> {
    fn peek_op(&self) -> Option<char> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(c)) => Some(*c),
            _ => None,
        }
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek_op() {
            self.pos += 1;
            let r = self.product()?;
            v = if op == '+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(op @ ('*' | '/')) = self.peek_op() {
            self.pos += 1;
            let r = self.unary()?;
            if op == '/' && r == 0.0 {
                return Err("division by zero".into());
            }
            v = if op == '*' { v * r } else { v / r };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, String> {
        match self.peek_op() {
            Some('-') => {
                self.pos += 1;
                Ok(-self.unary()?)
            }
            Some('+') => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.atom()?;
        if self.peek_op() == Some('^') {
            self.pos += 1;
            let exp = self.unary()?;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<f64, String> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        match t {
            Some(Token::Num(v)) => Ok(v),
            Some(Token::Name(n)) => (self.lookup)(&n),
            Some(Token::Op('(')) => {
                let v = self.sum()?;
                if self.peek_op() != Some(')') {
                    return Err("missing ')'".into());
                }
                self.pos += 1;
                Ok(v)
            }
            Some(t) => Err(format!("unexpected '{}'", t.show())),
            None => Err("expression ends too early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Result<f64, String> {
        eval(s, &mut |n| match n {
            "and_gates" => Ok(6400.0),
            "k" => Ok(2.0),
            _ => Err(format!("unknown parameter '{n}'")),
        })
    }

    #[test]
    fn arithmetic_and_names() {
        assert_eq!(ev("32 * and_gates"), Ok(204_800.0));
        assert_eq!(ev("1 + 2 * 3"), Ok(7.0));
        assert_eq!(ev("(1 + 2) * 3"), Ok(9.0));
        assert_eq!(ev("2 ^ 3 ^ 2"), Ok(512.0));
        assert_eq!(ev("-k ^ 2"), Ok(-4.0));
        assert_eq!(ev("1_000 / 4"), Ok(250.0));
        assert_eq!(ev("1.5e3 - 500"), Ok(1000.0));
        assert_eq!(ev("10e-1"), Ok(1.0));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(ev("32 * and_gate")
            .unwrap_err()
            .contains("unknown parameter 'and_gate'"));
        assert!(ev("1 +").unwrap_err().contains("ends too early"));
        assert!(ev("(1 + 2").unwrap_err().contains("missing ')'"));
        assert!(ev("1 $ 2").unwrap_err().contains("unexpected '$'"));
        assert!(ev("1 2").unwrap_err().contains("unexpected '2'"));
        assert!(ev("1 / 0").unwrap_err().contains("division by zero"));
        assert!(ev("").unwrap_err().contains("empty"));
        assert!(ev("10 ^ 400").unwrap_err().contains("not a finite"));
    }
}
