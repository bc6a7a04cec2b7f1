//! Rhai's built-in operators, for the value types a JSON record holds:
//! each gives the value Rhai's own operator gives, or `None` where Rhai
//! would fail or would look further (a registered function, a character,
//! a custom type), and the interpreter must decide.

use rhai::{Dynamic, FLOAT, INT, ImmutableString, Token};

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    /// The operator a token stands for, if it is one of these.
    pub fn of(token: &Token) -> Option<Op> {
        Some(match token {
            Token::Plus => Op::Add,
            Token::Minus => Op::Sub,
            Token::Multiply => Op::Mul,
            Token::Divide => Op::Div,
            Token::Modulo => Op::Rem,
            Token::EqualsTo => Op::Eq,
            Token::NotEqualsTo => Op::Ne,
            Token::GreaterThan => Op::Gt,
            Token::GreaterThanEqualsTo => Op::Ge,
            Token::LessThan => Op::Lt,
            Token::LessThanEqualsTo => Op::Le,
            _ => return None,
        })
    }

    fn compares(self) -> bool {
        !matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem)
    }
}

/// Which of the record's value types a value is (`None`: another type,
/// or a shared value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unit,
    Bool,
    Int,
    Float,
    Str,
    Array,
    Map,
}

fn kind(v: &Dynamic) -> Option<Kind> {
    if v.is_shared() {
        return None;
    }
    Some(if v.is_unit() {
        Kind::Unit
    } else if v.is_bool() {
        Kind::Bool
    } else if v.is_int() {
        Kind::Int
    } else if v.is_float() {
        Kind::Float
    } else if v.is_string() {
        Kind::Str
    } else if v.is_array() {
        Kind::Array
    } else if v.is_map() {
        Kind::Map
    } else {
        return None;
    })
}

/// `x op y` as Rhai computes it. `max_string` is the engine's string size
/// limit (0: none): a longer result is Rhai's error.
pub fn binary(op: Op, x: &Dynamic, y: &Dynamic, max_string: usize) -> Option<Dynamic> {
    let (kx, ky) = (kind(x)?, kind(y)?);
    match (kx, ky) {
        (Kind::Int, Kind::Int) => int(op, x.as_int().ok()?, y.as_int().ok()?),
        (Kind::Int | Kind::Float, Kind::Int | Kind::Float) => float(op, number(x)?, number(y)?),
        (Kind::Str, Kind::Str) => {
            let (a, b) = (
                x.read_lock::<ImmutableString>()?,
                y.read_lock::<ImmutableString>()?,
            );
            let (a, b) = (a.as_str(), b.as_str());
            match op {
                Op::Add => {
                    if max_string > 0 && a.len() + b.len() > max_string {
                        return None;
                    }
                    let mut s = String::with_capacity(a.len() + b.len());
                    s.push_str(a);
                    s.push_str(b);
                    Some(s.into())
                }
                Op::Sub | Op::Mul | Op::Div | Op::Rem => None,
                _ => Some(order(op, a.cmp(b)).into()),
            }
        }
        (Kind::Bool, Kind::Bool) if op.compares() => {
            Some(order(op, x.as_bool().ok()?.cmp(&y.as_bool().ok()?)).into())
        }
        (Kind::Unit, Kind::Unit) if op.compares() => Some((op == Op::Eq).into()),
        // Rhai's own operators between these types of one kind are
        // registered functions: the interpreter finds them.
        (a, b) if a == b => None,
        // Different types compare unequal, and neither is less.
        _ if op.compares() => Some((op == Op::Ne).into()),
        _ => None,
    }
}

fn number(v: &Dynamic) -> Option<FLOAT> {
    if v.is_float() {
        v.as_float().ok()
    } else {
        #[allow(clippy::cast_precision_loss)] // Rhai's own conversion
        v.as_int().ok().map(|i| i as FLOAT)
    }
}

fn order(op: Op, o: std::cmp::Ordering) -> bool {
    match op {
        Op::Eq => o.is_eq(),
        Op::Ne => o.is_ne(),
        Op::Gt => o.is_gt(),
        Op::Ge => o.is_ge(),
        Op::Lt => o.is_lt(),
        _ => o.is_le(),
    }
}

/// Integer arithmetic is checked: an overflow or a division by zero is
/// Rhai's error.
fn int(op: Op, x: INT, y: INT) -> Option<Dynamic> {
    Some(match op {
        Op::Add => x.checked_add(y)?.into(),
        Op::Sub => x.checked_sub(y)?.into(),
        Op::Mul => x.checked_mul(y)?.into(),
        Op::Div if y == 0 => return None,
        Op::Div => x.checked_div(y)?.into(),
        Op::Rem => x.checked_rem(y)?.into(),
        _ => order(op, x.cmp(&y)).into(),
    })
}

/// Float arithmetic is IEEE; comparisons are relative to `FLOAT::EPSILON`,
/// as Rhai's checked build compares.
#[allow(clippy::float_cmp)] // Rhai's own formulas, exactly
fn float(op: Op, x: FLOAT, y: FLOAT) -> Option<Dynamic> {
    let max = if x * y == 0.0 {
        1.0
    } else {
        x.abs().max(y.abs())
    };
    Some(match op {
        Op::Add => (x + y).into(),
        Op::Sub => (x - y).into(),
        Op::Mul => (x * y).into(),
        Op::Div => (x / y).into(),
        Op::Rem => (x % y).into(),
        Op::Eq => (max == 0.0 || (x - y).abs() / max <= FLOAT::EPSILON).into(),
        Op::Ne => (max != 0.0 && (x - y).abs() / max > FLOAT::EPSILON).into(),
        Op::Gt => (max != 0.0 && (x - y) / max > FLOAT::EPSILON).into(),
        Op::Ge => (max == 0.0 || (x - y) / max > -FLOAT::EPSILON).into(),
        Op::Lt => (max != 0.0 && (y - x) / max > FLOAT::EPSILON).into(),
        Op::Le => (max == 0.0 || (y - x) / max > -FLOAT::EPSILON).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operator over every pair of these values gives what the
    /// interpreter gives, or no answer where the interpreter fails or
    /// calls a function.
    #[test]
    fn every_operator_answers_as_rhai_does() {
        let engine = crate::transform::engine(&crate::transform::Limits::default());
        let values = [
            "()",
            "true",
            "false",
            "0",
            "1",
            "-7",
            "9223372036854775807",
            "-9223372036854775808",
            "0.0",
            "-0.0",
            "1.0",
            "2.5",
            "1000.0000000000001",
            "1000.0",
            "1e308",
            "\"\"",
            "\"a\"",
            "\"b\"",
            "\"ab\"",
            "[1]",
            "#{a: 1}",
            "'c'",
        ];
        let ops = [
            ("+", Op::Add),
            ("-", Op::Sub),
            ("*", Op::Mul),
            ("/", Op::Div),
            ("%", Op::Rem),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            (">=", Op::Ge),
            ("<", Op::Lt),
            ("<=", Op::Le),
        ];
        let mut answered = 0;
        for a in values {
            for b in values {
                let x: Dynamic = engine.eval(a).unwrap();
                let y: Dynamic = engine.eval(b).unwrap();
                for (text, op) in ops {
                    let script = format!("let x = {a}; let y = {b}; x {text} y");
                    let rhai = engine.eval::<Dynamic>(&script);
                    match binary(op, &x, &y, 0) {
                        None => {}
                        Some(native) => {
                            answered += 1;
                            let rhai = rhai.unwrap_or_else(|e| {
                                panic!("{script}: Rhai failed ({e}), native gave {native:?}")
                            });
                            assert_eq!(
                                (native.type_name(), native.to_string()),
                                (rhai.type_name(), rhai.to_string()),
                                "{script}"
                            );
                        }
                    }
                }
            }
        }
        // Most pairs are answered natively.
        assert!(answered > 3000, "{answered}");
    }

    #[test]
    fn a_string_longer_than_the_limit_is_left_to_rhai() {
        let (a, b) = (Dynamic::from("abc"), Dynamic::from("de"));
        assert_eq!(binary(Op::Add, &a, &b, 5).unwrap().to_string(), "abcde");
        assert!(binary(Op::Add, &a, &b, 4).is_none());
    }
}
