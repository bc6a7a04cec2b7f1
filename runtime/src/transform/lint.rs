//! Script mistakes that compile but lose data, found by walking the script's
//! syntax tree (Rhai's `internals`), for `sluice check`:
//!
//! - a transform whose last statement is an assignment, a `let` or a loop
//!   returns `()`, which filters every record;
//! - a method that changes its receiver in place returns `()`: using its
//!   result as a value (`record.plan = record.plan.trim()`) writes `null`;
//! - a builtin given a literal it cannot use (an invalid regular expression
//!   or strftime format) fails on every record.

use rhai::{ASTNode, Engine, Expr, OptimizationLevel, Position, Stmt};

use super::builtins;

/// Rhai methods that change their receiver in place and return `()`.
pub const IN_PLACE: [&str; 17] = [
    "trim",
    "make_upper",
    "make_lower",
    "replace",
    "pad",
    "truncate",
    "crop",
    "clear",
    "chop",
    "push",
    "append",
    "insert",
    "reverse",
    "sort",
    "dedup",
    "mixin",
    "fill_with",
];

/// One mistake, at a position of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
    /// 1-based line in the script.
    pub line: usize,
    /// 1-based column in the script.
    pub column: usize,
}

/// The function scripts read lookup tables with (registered by `lookup`).
pub const LOOKUP: &str = "lookup";

/// A `lookup("name", …)` call of a script, with the name written as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupCall {
    /// The table's name.
    pub name: String,
    /// 1-based line of the name in the script.
    pub line: usize,
    /// 1-based column of the name in the script.
    pub column: usize,
    /// The key, when it is a field of the record (`record.customer.id`:
    /// `customer.id`), which can then be read before the script runs.
    pub key_path: Option<String>,
}

/// The path of `record.a.b` (`a.b`); `None` for anything else.
fn record_path(e: &Expr) -> Option<String> {
    fn rest(e: &Expr, out: &mut Vec<String>) -> Option<()> {
        match e {
            Expr::Property(p, _) => out.push(p.2.to_string()),
            Expr::Dot(d, flags, _) if !flags.contains(rhai::ASTFlags::NEGATED) => {
                let Expr::Property(p, _) = &d.lhs else {
                    return None;
                };
                out.push(p.2.to_string());
                rest(&d.rhs, out)?;
            }
            _ => return None,
        }
        Some(())
    }
    let Expr::Dot(d, flags, _) = e else {
        return None;
    };
    if flags.contains(rhai::ASTFlags::NEGATED) {
        return None;
    }
    match &d.lhs {
        Expr::Variable(v, ..) if v.2.is_empty() && v.1.as_str() == "record" => {}
        _ => return None,
    }
    let mut parts = Vec::new();
    rest(&d.rhs, &mut parts)?;
    Some(parts.join("."))
}

/// The `lookup` calls of a script (or a condition) whose table is named by
/// a string literal; none when it does not compile.
pub fn lookup_calls(source: &str) -> Vec<LookupCall> {
    let mut e = Engine::new_raw();
    e.set_optimization_level(OptimizationLevel::None);
    let Ok(ast) = e.compile(source) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(f, _))) => Some(&**f),
            Some(ASTNode::Stmt(Stmt::FnCall(f, _))) => Some(&**f),
            _ => None,
        };
        if let Some(f) = call
            && f.name == LOOKUP
            && f.args.len() == 2
            && let Expr::StringConstant(name, pos) = &f.args[0]
        {
            found.push(LookupCall {
                name: name.to_string(),
                line: pos.line().unwrap_or(1),
                column: pos.position().unwrap_or(1),
                key_path: record_path(&f.args[1]),
            });
        }
        true
    });
    found
}

/// The mistakes of a transform script (none when it does not compile: the
/// compiler's error is reported instead).
pub fn transform(source: &str) -> Vec<Finding> {
    let mut e = Engine::new_raw();
    e.set_optimization_level(OptimizationLevel::None);
    let Ok(ast) = e.compile(source) else {
        return Vec::new();
    };
    let own: Vec<String> = ast.iter_functions().map(|f| f.name.to_owned()).collect();
    let in_place = |name: &str| IN_PLACE.contains(&name) && !own.iter().any(|f| f == name);
    let mut found = Vec::new();
    let end = |what: &str, pos: Position| Finding {
        message: format!(
            "the script ends with {what}, so it returns `()`, which filters every record"
        ),
        help: "end the script with the record to deliver: `record`".into(),
        line: pos.line().unwrap_or(1),
        column: pos.position().unwrap_or(1),
    };
    match ast.statements().last() {
        None => found.push(end("nothing", Position::new(1, 1))),
        Some(Stmt::Assignment(a)) => found.push(end("an assignment", a.1.lhs.start_position())),
        Some(s @ Stmt::Var(..)) => found.push(end("a `let`", s.position())),
        Some(s @ (Stmt::For(..) | Stmt::While(..) | Stmt::Do(..))) if loop_ends(s) => {
            found.push(end("a loop", s.position()));
        }
        Some(Stmt::Expr(x)) => {
            if let Some((name, pos)) = last_call(x).filter(|(n, _)| in_place(n)) {
                found.push(end(
                    &format!("`{name}(…)`, which changes its receiver in place"),
                    pos,
                ));
            }
        }
        Some(Stmt::FnCall(f, pos)) if in_place(&f.name) => {
            found.push(end(&format!("`{}(…)`", f.name), *pos));
        }
        Some(_) => {}
    }
    ast.walk(&mut |path: &[ASTNode]| {
        let value = match path.last() {
            Some(ASTNode::Stmt(Stmt::Assignment(a))) => Some(&a.1.rhs),
            Some(ASTNode::Stmt(Stmt::Var(v, ..))) => Some(&v.1),
            _ => None,
        };
        if let Some((name, pos)) = value.and_then(last_call).filter(|(n, _)| in_place(n)) {
            found.push(Finding {
                message: format!(
                    "`{name}` changes its receiver in place and returns `()`: this writes `()` (null), not the changed value"
                ),
                help: format!(
                    "call it as a statement of its own, which changes the value itself: `record.field.{name}(…);`"
                ),
                line: pos.line().unwrap_or(1),
                column: pos.position().unwrap_or(1),
            });
        }
        true
    });
    found.extend(functions_reading_the_record(&ast));
    found.extend(invalid_literals(&ast, &own));
    found.extend(not_booleans(&ast));
    found.sort_by_key(|f| (f.line, f.column));
    found.dedup();
    found
}

/// `record` or `meta` read inside a `fn`: a function sees only its
/// parameters, so this fails on every record.
fn functions_reading_the_record(ast: &rhai::AST) -> Vec<Finding> {
    let key = |p: Position| (p.line().unwrap_or(0), p.position().unwrap_or(0));
    // Each function: its name, its body's span, its parameters and locals,
    // and the first `record` or `meta` read in it.
    struct Func {
        name: String,
        span: ((usize, usize), (usize, usize)),
        own: Vec<String>,
        first: Option<(String, Position)>,
    }
    let mut funcs: Vec<Func> = ast
        .iter_fn_def()
        .map(|f| Func {
            name: f.name.to_string(),
            span: (key(f.body.start_position()), key(f.body.end_position())),
            own: f.params.iter().map(ToString::to_string).collect(),
            first: None,
        })
        .collect();
    if funcs.is_empty() {
        return Vec::new();
    }
    ast.walk(&mut |path: &[ASTNode]| {
        let (name, pos, declared) = match path.last() {
            Some(ASTNode::Stmt(s @ Stmt::Var(v, ..))) => (v.0.name.to_string(), s.position(), true),
            Some(ASTNode::Expr(Expr::Variable(v, _, pos))) => (v.1.to_string(), *pos, false),
            _ => return true,
        };
        let at = key(pos);
        if let Some(f) = funcs.iter_mut().find(|f| f.span.0 <= at && at <= f.span.1) {
            if declared {
                f.own.push(name);
            } else if (name == "record" || name == "meta")
                && !f.own.contains(&name)
                && f.first.is_none()
            {
                f.first = Some((name, pos));
            }
        }
        true
    });
    funcs
        .into_iter()
        .filter_map(|f| {
            let (var, pos) = f.first?;
            Some(Finding {
                message: format!(
                    "function `{}` reads `{var}`, which a function cannot see: it fails on every record",
                    f.name
                ),
                help: format!("pass it as a parameter: `fn {}({var}, …)`", f.name),
                line: pos.line().unwrap_or(1),
                column: pos.position().unwrap_or(1),
            })
        })
        .collect()
}

/// The mistakes of a route condition: a constant that is not a boolean
/// (`'yes'`, `1`) never selects a record (or fails every one).
pub fn condition(source: &str) -> Vec<Finding> {
    let mut e = Engine::new_raw();
    e.set_optimization_level(OptimizationLevel::None);
    let Ok(ast) = e.compile_expression(source) else {
        return Vec::new();
    };
    let literals = invalid_literals(&ast, &[]);
    if !literals.is_empty() {
        return literals;
    }
    let mut found = Vec::new();
    if let Some(Stmt::Expr(x)) = ast.statements().first()
        && let Some(kind) = never_bool(x, &[])
    {
        let pos = x.start_position();
        found.push(Finding {
            message: format!("the condition is always {kind}, never `true` or `false`"),
            help: "write a comparison, such as `record.paid == true` or `record.total > 100`"
                .into(),
            line: pos.line().unwrap_or(1),
            column: pos.position().unwrap_or(1),
        });
        return found;
    }
    found.extend(not_booleans(&ast));
    found
}

/// What an expression always is when that is never a boolean: `"a number
/// (the result of `len`)"`; `None` when it may be a boolean or is unknown.
fn never_bool(x: &Expr, own: &[String]) -> Option<String> {
    let kind = match x {
        Expr::StringConstant(..) | Expr::InterpolatedString(..) => "a string".into(),
        Expr::IntegerConstant(..) | Expr::FloatConstant(..) => "a number".into(),
        Expr::CharConstant(..) => "a character".into(),
        Expr::Array(..) => "an array".into(),
        Expr::Map(..) => "an object map".into(),
        Expr::Unit(..) => "`()`".into(),
        Expr::FnCall(f, _) if f.op_token.is_some() => match f.name.as_str() {
            "+" => "a number or a string (the result of `+`)".into(),
            op @ ("-" | "*" | "/" | "%" | "**" | "<<" | ">>") => {
                format!("a number (the result of `{op}`)")
            }
            _ => return None,
        },
        Expr::FnCall(f, _) | Expr::MethodCall(f, _) if !own.contains(&f.name.to_string()) => {
            returns(&f.name)?
        }
        Expr::Dot(..) => {
            let (name, _) = last_call(x)?;
            if own.contains(&name) {
                return None;
            }
            returns(&name)?
        }
        _ => return None,
    };
    Some(kind)
}

/// What a well-known function or method returns, when it is never a boolean.
fn returns(name: &str) -> Option<String> {
    const NUMBER: [&str; 20] = [
        "len",
        "index_of",
        "to_int",
        "to_float",
        "parse_int",
        "parse_float",
        "abs",
        "floor",
        "ceiling",
        "round",
        "round_to",
        "hash64",
        "hash_bucket",
        "parse_timestamp",
        "parse_epoch",
        "duration_ms",
        "timestamp_add",
        "truncate_timestamp",
        "max",
        "min",
    ];
    const STRING: [&str; 14] = [
        "to_upper",
        "to_lower",
        "sub_string",
        "to_string",
        "to_json",
        "sha256",
        "md5",
        "format_timestamp",
        "regex_replace",
        "base64_encode",
        "base64_decode",
        "hex_encode",
        "url_encode",
        "uuid",
    ];
    const ARRAY: [&str; 6] = [
        "split",
        "keys",
        "values",
        "regex_split",
        "regex_find_all",
        "parse_csv",
    ];
    let kind = if NUMBER.contains(&name) {
        "a number"
    } else if STRING.contains(&name) {
        "a string"
    } else if ARRAY.contains(&name) {
        "an array"
    } else if IN_PLACE.contains(&name) {
        "`()`"
    } else {
        return None;
    };
    Some(format!("{kind} (the result of `{name}`)"))
}

/// Operands of `&&`, `||` and `!`, and conditions of `if` and `while`, that
/// are never booleans: they fail on every record that reaches them.
fn not_booleans(ast: &rhai::AST) -> Vec<Finding> {
    let own: Vec<String> = ast.iter_functions().map(|f| f.name.to_owned()).collect();
    let mut found = Vec::new();
    let mut check = |x: &Expr, what: &str| {
        if let Some(kind) = never_bool(x, &own) {
            let pos = x.start_position();
            found.push(Finding {
                message: format!("{what} takes a boolean, but this is always {kind}: it fails on every record that reaches it"),
                help: "write a comparison, such as `record.items.len() > 0`".into(),
                line: pos.line().unwrap_or(1),
                column: pos.position().unwrap_or(1),
            });
        }
    };
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::And(items, _))) => {
                items.iter().for_each(|x| check(x, "`&&`"));
            }
            Some(ASTNode::Expr(Expr::Or(items, _))) => {
                items.iter().for_each(|x| check(x, "`||`"));
            }
            Some(ASTNode::Expr(Expr::FnCall(f, _))) if f.op_token.is_some() && f.name == "!" => {
                f.args.iter().for_each(|x| check(x, "`!`"));
            }
            Some(ASTNode::Stmt(Stmt::If(f, _))) => check(&f.expr, "`if`"),
            Some(ASTNode::Stmt(Stmt::While(f, _))) if !matches!(f.expr, Expr::Unit(_)) => {
                check(&f.expr, "`while`");
            }
            _ => {}
        }
        true
    });
    found
}

/// Why a literal is refused, if it is.
type Refuses = fn(&str) -> Option<String>;

/// Builtins whose argument, when a literal, can be checked before any
/// record: the name, the argument's index in a function call, and why a
/// value is refused.
const LITERAL_ARGS: [(&str, usize, Refuses); 8] = [
    ("regex_match", 1, builtins::pattern_error),
    ("regex_captures", 1, builtins::pattern_error),
    ("regex_named_captures", 1, builtins::pattern_error),
    ("regex_find_all", 1, builtins::pattern_error),
    ("regex_replace", 1, builtins::pattern_error),
    ("regex_split", 1, builtins::pattern_error),
    ("format_timestamp", 1, builtins::format_error),
    ("parse_timestamp", 1, builtins::format_error),
];

/// Calls of a builtin with a literal it refuses (`regex_match(s, "(")`):
/// they fail on every record. A function of the script's own with the
/// same name is left alone.
fn invalid_literals(ast: &rhai::AST, own: &[String]) -> Vec<Finding> {
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let (f, method) = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(f, _))) => (f, false),
            Some(ASTNode::Expr(Expr::MethodCall(f, _))) => (f, true),
            _ => return true,
        };
        let Some((_, index, check)) = LITERAL_ARGS.iter().find(|(n, ..)| f.name == *n) else {
            return true;
        };
        if own.iter().any(|o| f.name == o.as_str()) {
            return true;
        }
        // A method call's receiver is not among its arguments.
        let index = if method { index - 1 } else { *index };
        if let Some(Expr::StringConstant(value, pos)) = f.args.get(index)
            && let Some(why) = check(value)
        {
            found.push(Finding {
                message: format!("`{}` fails on every record: {why}", f.name),
                help: "fix the literal; the builtins are described in the pipeline format reference (Scripting, Builtins)".into(),
                line: pos.line().unwrap_or(1),
                column: pos.position().unwrap_or(1),
            });
        }
        true
    });
    found
}

/// Whether a loop can end and let the script go past it: not when it
/// returns or throws from inside, nor when it is `loop` or `while true`
/// without a `break` (it ends only by an error, or a limit).
fn loop_ends(s: &Stmt) -> bool {
    let (mut leaves, mut breaks) = (false, false);
    s.walk(&mut Vec::new(), &mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Return(..))) => leaves = true,
            Some(ASTNode::Stmt(Stmt::BreakLoop(..))) => breaks = true,
            Some(ASTNode::Expr(Expr::FnCall(f, _))) if f.name == "throw" => leaves = true,
            _ => {}
        }
        true
    });
    let forever = match s {
        Stmt::While(f, _) => matches!(f.expr, Expr::Unit(_) | Expr::BoolConstant(true, _)),
        _ => false,
    };
    !leaves && (!forever || breaks)
}

/// The method or function a value ends with (`a.b.trim()` → `trim`).
fn last_call(e: &Expr) -> Option<(String, Position)> {
    match e {
        Expr::MethodCall(f, pos) | Expr::FnCall(f, pos) => Some((f.name.to_string(), *pos)),
        Expr::Dot(b, ..) => last_call(&b.rhs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(source: &str) -> Vec<(usize, usize, String)> {
        transform(source)
            .into_iter()
            .map(|f| (f.line, f.column, f.message))
            .collect()
    }

    #[test]
    fn a_script_that_returns_unit_is_found() {
        let ends = |what: &str| {
            format!("the script ends with {what}, so it returns `()`, which filters every record")
        };
        assert_eq!(
            messages("record.b = record.a + 1"),
            [(1, 1, ends("an assignment"))]
        );
        assert_eq!(
            messages("let x = 1;\nrecord.b = x;"),
            [(2, 1, ends("an assignment"))]
        );
        assert_eq!(messages("let x = record;"), [(1, 1, ends("a `let`"))]);
        assert_eq!(
            messages("for x in record.items { x; }"),
            [(1, 1, ends("a loop"))]
        );
        assert_eq!(
            messages("let i = 0; loop { i += 1; if i > 3 { break; } }"),
            [(1, 12, ends("a loop"))]
        );
        assert_eq!(messages(""), [(1, 1, ends("nothing"))]);
        assert_eq!(
            messages("record.tags.push(1)"),
            [(
                1,
                13,
                ends("`push(…)`, which changes its receiver in place")
            )]
        );
        for fine in [
            "record",
            "record.b = 1; record",
            "if record.a > 1 { record }",
            "record.b = 1;\nrecord;",
            "#{ a: 1 }",
            "()",
            "loop { }",
            "while true { record.n += 1; }",
            "for x in record.items { if x > 1 { return record; } }",
            "loop { if record.n > 1 { throw \"big\"; } }",
        ] {
            assert_eq!(messages(fine), [], "{fine}");
        }
    }

    #[test]
    fn lookup_calls_name_their_table_and_a_key_read_from_the_record() {
        let calls = lookup_calls(
            "let c = lookup(\"customers\", record.customer.id);\n\
             record.r = lookup(\"rates\", record.currency).usd;\n\
             lookup(\"x\", record.a + \"b\");\n\
             let name = \"y\"; lookup(name, record.k);\n\
             record",
        );
        let got: Vec<(&str, usize, usize, Option<&str>)> = calls
            .iter()
            .map(|c| (c.name.as_str(), c.line, c.column, c.key_path.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("customers", 1, 16, Some("customer.id")),
                ("rates", 2, 19, Some("currency")),
                ("x", 3, 8, None),
            ]
        );
    }

    #[test]
    fn a_function_reading_the_record_is_found() {
        assert_eq!(
            messages("fn total() { record.qty * 2 }\nrecord.t = total(); record"),
            [(
                1,
                14,
                "function `total` reads `record`, which a function cannot see: it fails on every record".into()
            )]
        );
        for fine in [
            "fn total(record) { record.qty * 2 } record.t = total(record); record",
            "fn f() { let meta = 1; meta } record",
        ] {
            assert_eq!(messages(fine), [], "{fine}");
        }
    }

    #[test]
    fn an_if_or_operand_that_is_never_a_boolean_is_found() {
        assert_eq!(
            messages("if record.items.len() { record.has = true; }\nrecord"),
            [(1, 4, "`if` takes a boolean, but this is always a number (the result of `len`): it fails on every record that reaches it".into())]
        );
        assert_eq!(
            messages("if !record.name.trim() { return (); }\nrecord"),
            [(1, 5, "`!` takes a boolean, but this is always `()` (the result of `trim`): it fails on every record that reaches it".into())]
        );
        for fine in [
            "if record.items.len() > 0 { record.has = true; } record",
            "while record.n < 3 { record.n += 1; } record",
            "if record.ok { record } else { () }",
        ] {
            assert_eq!(messages(fine), [], "{fine}");
        }
    }

    #[test]
    fn a_literal_a_builtin_refuses_is_found() {
        assert_eq!(
            messages("record.ok = regex_match(record.id, \"(order\");\nrecord"),
            [(
                1,
                36,
                "`regex_match` fails on every record: \"(order\" is not a valid regular expression: unclosed group".into()
            )]
        );
        assert_eq!(
            messages("record.d = record.t.format_timestamp(\"%Y-%\"); record"),
            [(
                1,
                38,
                "`format_timestamp` fails on every record: \"%Y-%\" is not a valid strftime format"
                    .into()
            )]
        );
        let found = condition("regex_match(record.id, \"[\")");
        assert_eq!(
            (found[0].line, found[0].column, found[0].message.as_str()),
            (
                1,
                24,
                "`regex_match` fails on every record: \"[\" is not a valid regular expression: unclosed character class"
            )
        );
        for fine in [
            "record.ok = regex_match(record.id, \"^order-\\\\d+$\"); record",
            "record.ok = regex_match(record.id, record.pattern); record",
            "fn regex_match(a, b) { true } record.ok = regex_match(1, \"(\"); record",
            "record.d = format_timestamp(record.t, \"%Y-%m-%d\"); record",
        ] {
            assert_eq!(messages(fine), [], "{fine}");
        }
    }

    #[test]
    fn a_condition_that_is_never_a_boolean_is_found() {
        let of = |s: &str| {
            condition(s)
                .into_iter()
                .map(|f| f.message)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of("'y'"),
            ["the condition is always a character, never `true` or `false`"]
        );
        assert_eq!(
            of("\"paid\""),
            ["the condition is always a string, never `true` or `false`"]
        );
        assert_eq!(
            of("1"),
            ["the condition is always a number, never `true` or `false`"]
        );
        assert_eq!(
            of("record.total * 2"),
            ["the condition is always a number (the result of `*`), never `true` or `false`"]
        );
        assert_eq!(
            of("record.items.len()"),
            ["the condition is always a number (the result of `len`), never `true` or `false`"]
        );
        assert_eq!(
            of("record.paid && record.name.to_upper()"),
            [
                "`&&` takes a boolean, but this is always a string (the result of `to_upper`): it fails on every record that reaches it"
            ]
        );
        for fine in [
            "record.paid",
            "!record.paid",
            "record.total > 1",
            "true",
            "record.items.len() > 0",
            "record.a && (record.b || record.c)",
            "regex_match(record.id, \"^o-\")",
            "record.flags & 1 == 1",
        ] {
            assert!(of(fine).is_empty(), "{fine}");
        }
    }

    #[test]
    fn the_unit_of_an_in_place_method_used_as_a_value_is_found() {
        let found =
            messages("record.plan = record.plan.trim();\nlet u = make_upper(record.name);\nrecord");
        assert_eq!(
            found.iter().map(|(l, c, _)| (*l, *c)).collect::<Vec<_>>(),
            [(1, 27), (2, 9)]
        );
        assert!(
            found[0]
                .2
                .starts_with("`trim` changes its receiver in place")
        );
        assert!(found[1].2.starts_with("`make_upper` changes"));
        for fine in [
            "record.plan.trim(); record",
            "record.u = record.name.to_upper(); record",
            "fn trim(s) { s } record.p = trim(record.p); record",
        ] {
            assert_eq!(messages(fine), [], "{fine}");
        }
    }
}
