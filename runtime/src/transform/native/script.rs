//! Transforms run without the interpreter.
//!
//! A transform written in the common subset of Rhai is compiled once, from
//! Rhai's own syntax tree, into a small tree this module walks: `let`,
//! assignment to a local or to a field of `record` (`record.total = …`,
//! `+=` …), `if`, `for` over an array, `break`, `continue`, `return`, the
//! operators of [`ops`](super::ops), `&&`, `||`, `!`, `??`, reading fields
//! of the record, of its nested objects and of `meta`, and a few string
//! methods. A script with anything else (a function call, a loop without
//! an end, a script function …) is not compiled and the interpreter runs
//! it, as before.
//!
//! A compiled script gives Rhai's value or no answer. Wherever Rhai would
//! do something else than the plain case (a value of another type, an
//! overflow, a missing method, a limit reached), the run stops, undoes the
//! fields it wrote, and the interpreter runs the script on the record as it
//! was: so a record gets exactly the interpreter's result, errors and
//! limits included. The gain is what the interpreter spends around the
//! work: looking up variables and functions by name, counting operations,
//! and copying every value it reads, whole objects and arrays included.

use rhai::{AST, FnCallExpr, Stmt, Token};
use rhai::{ASTFlags, Array, Dynamic, Engine, Expr, INT, Identifier, ImmutableString, Map};

use super::ops::{self, Op};
use crate::record::tree::{At, Node};
use crate::transform::meta::{self, Getter, Meta};
use crate::transform::{Limits, convert};

/// A transform compiled to run natively.
#[derive(Debug)]
pub struct Script {
    body: Vec<S>,
    /// How many local variables it declares.
    slots: usize,
    /// The record fields it writes: values read from these are copied.
    written: Vec<Identifier>,
}

/// What a native run gave.
#[derive(Debug)]
pub enum Outcome {
    /// The script's value is the record itself (as changed).
    Keep,
    /// Any other value: `()` filters the record, an array fans it out.
    Value(Dynamic),
}

#[derive(Debug)]
enum S {
    Let(usize, E),
    Set(usize, Option<Op>, E),
    SetField(Identifier, Option<Op>, E),
    If(E, Vec<S>, Vec<S>),
    For {
        var: usize,
        counter: Option<usize>,
        iter: E,
        body: Vec<S>,
    },
    Break,
    Continue,
    Return(E),
    Expr(E),
}

#[derive(Debug)]
enum E {
    Const(Dynamic),
    Local(usize),
    /// The whole record: only as the script's value.
    Record,
    /// `record.FIELD`.
    Field(Identifier),
    /// `meta.FACT`.
    Meta(Getter),
    /// `VALUE.FIELD` of an object.
    Prop(Box<E>, Identifier),
    Method(Box<E>, Method, Vec<E>),
    Binary(Op, Box<(E, E)>),
    Neg(Box<E>),
    Not(Box<E>),
    And(Vec<E>),
    Or(Vec<E>),
    Coalesce(Vec<E>),
    Block(Vec<S>),
}

/// The methods run natively: the string package's, which never change
/// their object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    StartsWith,
    EndsWith,
    Contains,
    ToLower,
    ToUpper,
    Len,
}

impl Method {
    fn of(name: &str, args: usize) -> Option<Method> {
        Some(match (name, args) {
            ("starts_with", 1) => Method::StartsWith,
            ("ends_with", 1) => Method::EndsWith,
            ("contains", 1) => Method::Contains,
            ("to_lower", 0) => Method::ToLower,
            ("to_upper", 0) => Method::ToUpper,
            ("len", 0) => Method::Len,
            _ => return None,
        })
    }

    /// The method's value on `obj`, as the string, array and map packages
    /// give it; `None` for any other type.
    fn apply(self, obj: &Dynamic, args: &[Dynamic], max_string: usize) -> Option<Dynamic> {
        if obj.is_shared() {
            return None;
        }
        if self == Method::Len {
            if let Some(a) = obj.read_lock::<Array>() {
                return Some(count(a.len()));
            }
            if let Some(m) = obj.read_lock::<Map>() {
                return Some(count(m.len()));
            }
        }
        let s = obj.read_lock::<ImmutableString>()?;
        let arg = || match args {
            [a] if !a.is_shared() => a.read_lock::<ImmutableString>(),
            _ => None,
        };
        let text = |t: String| (max_string == 0 || t.len() <= max_string).then(|| t.into());
        match self {
            Method::StartsWith => Some(s.starts_with(arg()?.as_str()).into()),
            Method::EndsWith => Some(s.ends_with(arg()?.as_str()).into()),
            Method::Contains => Some(s.contains(arg()?.as_str()).into()),
            // As the string package does: the same string when nothing changes.
            Method::ToLower if s.is_empty() || s.chars().all(char::is_lowercase) => {
                Some(s.clone().into())
            }
            Method::ToLower => text(s.to_lowercase()),
            Method::ToUpper if s.chars().all(char::is_uppercase) => Some(s.clone().into()),
            Method::ToUpper => text(s.to_uppercase()),
            Method::Len => Some(count(s.chars().count())),
        }
    }
}

fn count(n: usize) -> Dynamic {
    INT::try_from(n).unwrap_or(INT::MAX).into()
}

/// A value as a run holds it: its own, or a place in the record (an object
/// or array of the record is read where it is, not copied).
#[derive(Debug, Clone)]
enum Val {
    Own(Dynamic),
    /// A field of the record that the script never writes, then keys and indexes.
    At(Identifier, Vec<Step>),
    /// An object or array of the parsed record ([`Tree`]), which a run never changes.
    Node(u32),
    /// The record itself.
    Record,
}

#[derive(Debug, Clone)]
enum Step {
    Key(Identifier),
    Index(usize),
}

impl Default for Val {
    fn default() -> Self {
        Val::Own(Dynamic::UNIT)
    }
}

/// Why a run stopped before its end.
enum Stop {
    /// The interpreter must run the script.
    Bail,
    Return(Val),
    Break,
    Continue,
}

type R<T> = Result<T, Stop>;

// --- Compiling -------------------------------------------------------------

struct Compiler {
    /// Variables in scope: name, slot, constant.
    scope: Vec<(ImmutableString, usize, bool)>,
    slots: usize,
    written: Vec<Identifier>,
}

impl Script {
    /// The script compiled, if it keeps to the subset this module runs.
    pub fn compile(ast: &AST) -> Option<Script> {
        if ast.has_functions() || ast.resolver().is_some() {
            return None;
        }
        let mut c = Compiler {
            scope: Vec::new(),
            slots: 0,
            written: Vec::new(),
        };
        let body = c.block(ast.statements(), true)?;
        Some(Script {
            body,
            slots: c.slots,
            written: c.written,
        })
    }
}

impl Compiler {
    fn declare(&mut self, name: &ImmutableString, constant: bool) -> Option<usize> {
        if matches!(name.as_str(), "record" | "meta") {
            return None;
        }
        let slot = self.slots;
        self.slots += 1;
        self.scope.push((name.clone(), slot, constant));
        Some(slot)
    }

    fn local(&self, name: &str) -> Option<(usize, bool)> {
        self.scope
            .iter()
            .rev()
            .find(|(n, ..)| n.as_str() == name)
            .map(|(_, s, c)| (*s, *c))
    }

    /// A block; `tail`: its value is the script's value.
    fn block(&mut self, stmts: &[Stmt], tail: bool) -> Option<Vec<S>> {
        let mark = self.scope.len();
        let n = stmts.len();
        let body = stmts
            .iter()
            .enumerate()
            .map(|(i, s)| self.stmt(s, tail && i + 1 == n))
            .collect();
        self.scope.truncate(mark);
        body
    }

    fn stmt(&mut self, stmt: &Stmt, tail: bool) -> Option<S> {
        Some(match stmt {
            Stmt::Noop(_) => S::Expr(E::Const(Dynamic::UNIT)),
            Stmt::Var(x, flags, _) if !flags.contains(ASTFlags::EXPORTED) => {
                let (ident, value, _) = &**x;
                let value = self.expr(value)?;
                let slot = self.declare(&ident.name, flags.contains(ASTFlags::CONSTANT))?;
                S::Let(slot, value)
            }
            Stmt::Assignment(x) => {
                let (assign, target) = &**x;
                let op = match assign.get_op_assignment_info() {
                    None => None,
                    Some((.., op, _)) => Some(Op::of(op)?),
                };
                let value = self.expr(&target.rhs)?;
                match &target.lhs {
                    Expr::Variable(v, ..) => {
                        let (slot, constant) = self.local(variable(v)?)?;
                        if constant {
                            return None;
                        }
                        S::Set(slot, op, value)
                    }
                    Expr::Dot(d, flags, _) if !flags.contains(ASTFlags::NEGATED) => {
                        let field = match (&d.lhs, &d.rhs) {
                            (Expr::Variable(v, ..), Expr::Property(p, _))
                                if variable(v) == Some("record") =>
                            {
                                Identifier::from(p.2.as_str())
                            }
                            _ => return None,
                        };
                        if !self.written.contains(&field) {
                            self.written.push(field.clone());
                        }
                        S::SetField(field, op, value)
                    }
                    _ => return None,
                }
            }
            Stmt::If(x, _) => S::If(
                self.expr(&x.expr)?,
                self.block(x.body.statements(), tail)?,
                self.block(x.branch.statements(), tail)?,
            ),
            Stmt::For(x, _) => {
                let (var, counter, flow) = &**x;
                let iter = self.expr(&flow.expr)?;
                let mark = self.scope.len();
                let var = self.declare(&var.name, false);
                let counter = counter.as_ref().map(|c| self.declare(&c.name, false));
                let body = self.block(flow.body.statements(), false);
                self.scope.truncate(mark);
                S::For {
                    var: var?,
                    counter: counter.map_or(Some(None), |c| c.map(Some))?,
                    iter,
                    body: body?,
                }
            }
            Stmt::BreakLoop(None, flags, _) if flags.contains(ASTFlags::BREAK) => S::Break,
            Stmt::BreakLoop(None, flags, _) if *flags == ASTFlags::NONE => S::Continue,
            // `return`; `throw` has the BREAK flag.
            Stmt::Return(value, flags, _) if *flags == ASTFlags::NONE => S::Return(match value {
                None => E::Const(Dynamic::UNIT),
                Some(e) => self.value(e)?,
            }),
            Stmt::FnCall(f, _) => S::Expr(self.operator(f)?),
            Stmt::Expr(e) if tail => S::Expr(self.value(e)?),
            Stmt::Expr(e) => S::Expr(self.expr(e)?),
            Stmt::Block(b) => S::If(
                E::Const(true.into()),
                self.block(b.statements(), tail)?,
                Vec::new(),
            ),
            _ => return None,
        })
    }

    /// A script's value: an expression, or the record itself.
    fn value(&mut self, e: &Expr) -> Option<E> {
        match e {
            Expr::Variable(v, ..) if variable(v) == Some("record") => Some(E::Record),
            _ => self.expr(e),
        }
    }

    fn expr(&mut self, e: &Expr) -> Option<E> {
        Some(match e {
            Expr::DynamicConstant(v, _) => E::Const((**v).clone()),
            Expr::BoolConstant(b, _) => E::Const((*b).into()),
            Expr::IntegerConstant(n, _) => E::Const((*n).into()),
            Expr::FloatConstant(f, _) => E::Const(Dynamic::from_float(**f)),
            Expr::StringConstant(s, _) => E::Const(s.clone().into()),
            Expr::Unit(_) => E::Const(Dynamic::UNIT),
            Expr::Variable(v, ..) => E::Local(self.local(variable(v)?)?.0),
            Expr::Dot(d, flags, _) if !flags.contains(ASTFlags::NEGATED) => {
                let base = match &d.lhs {
                    Expr::Variable(v, ..) if variable(v) == Some("record") => Base::Record,
                    Expr::Variable(v, ..) if variable(v) == Some("meta") => Base::Meta,
                    other => Base::Value(self.expr(other)?),
                };
                self.chain(base, &d.rhs)?
            }
            Expr::FnCall(f, _) => self.operator(f)?,
            Expr::And(list, _) => E::And(self.list(list)?),
            Expr::Or(list, _) => E::Or(self.list(list)?),
            Expr::Coalesce(list, _) => E::Coalesce(self.list(list)?),
            Expr::Stmt(b) => E::Block(self.block(b.statements(), false)?),
            _ => return None,
        })
    }

    fn list(&mut self, list: &[Expr]) -> Option<Vec<E>> {
        list.iter().map(|e| self.expr(e)).collect()
    }

    fn operator(&mut self, f: &FnCallExpr) -> Option<E> {
        if !f.namespace.is_empty() {
            return None;
        }
        let token = f.op_token.as_ref()?;
        Some(match &f.args[..] {
            [x] => match token {
                Token::Bang => E::Not(Box::new(self.expr(x)?)),
                Token::Minus | Token::UnaryMinus => E::Neg(Box::new(self.expr(x)?)),
                _ => return None,
            },
            [x, y] => E::Binary(Op::of(token)?, Box::new((self.expr(x)?, self.expr(y)?))),
            _ => return None,
        })
    }

    /// The rest of a `.` chain after `base`.
    fn chain(&mut self, base: Base, rhs: &Expr) -> Option<E> {
        match rhs {
            Expr::Property(p, _) => self.property(base, &p.2),
            Expr::MethodCall(f, _) => self.method(base, f),
            Expr::Dot(d, flags, _) if !flags.contains(ASTFlags::NEGATED) => {
                let inner = match &d.lhs {
                    Expr::Property(p, _) => self.property(base, &p.2)?,
                    Expr::MethodCall(f, _) => self.method(base, f)?,
                    _ => return None,
                };
                self.chain(Base::Value(inner), &d.rhs)
            }
            _ => None,
        }
    }

    fn property(&mut self, base: Base, name: &str) -> Option<E> {
        Some(match base {
            Base::Record => E::Field(name.into()),
            Base::Meta => E::Meta(meta::getter(name)?),
            Base::Value(e) => E::Prop(Box::new(e), name.into()),
        })
    }

    fn method(&mut self, base: Base, f: &FnCallExpr) -> Option<E> {
        let Base::Value(obj) = base else {
            return None;
        };
        if !f.namespace.is_empty() || f.capture_parent_scope {
            return None;
        }
        let method = Method::of(&f.name, f.args.len())?;
        Some(E::Method(Box::new(obj), method, self.list(&f.args)?))
    }
}

enum Base {
    Record,
    Meta,
    Value(E),
}

/// A variable's name, if it is not in a module.
fn variable(
    v: &(
        Option<std::num::NonZeroUsize>,
        ImmutableString,
        rhai::Namespace,
        u64,
    ),
) -> Option<&str> {
    v.2.is_empty().then_some(v.1.as_str())
}

// --- Running ---------------------------------------------------------------

/// How many operations a native step is counted as: at least as many as
/// the interpreter counts for the same step, so a script the interpreter
/// would stop at `max_operations` stops here first and goes to it.
const OPS_PER_STEP: u64 = 4;

/// The record a run reads and writes.
enum Rec<'a> {
    /// A Rhai map, written in place.
    Map(&'a mut Map),
    /// A parsed record (an object) and the fields written over it, sorted
    /// by name.
    Tree {
        root: At<'a>,
        start: u32,
        len: u32,
        written: &'a mut Vec<(Identifier, Dynamic)>,
    },
}

struct Run<'a> {
    script: &'a Script,
    record: Rec<'a>,
    meta: &'a Meta,
    locals: Vec<Val>,
    /// Fields written, with what they held, to undo a run that stops.
    undo: Vec<(Identifier, Option<Dynamic>)>,
    ops: u64,
    max_ops: u64,
    max_string: usize,
    /// What the run added to the record, against the configured limits.
    added_bytes: usize,
    added_entries: usize,
    limits: &'a Limits,
}

impl Script {
    /// Runs the script on `record`: its value, or `None` (the record
    /// unchanged) when the interpreter must run it. `engine` holds the
    /// limits as set for this record.
    pub fn run(
        &self,
        record: &mut Dynamic,
        meta: &Meta,
        engine: &Engine,
        limits: &Limits,
    ) -> Option<Outcome> {
        if record.is_shared() {
            return None;
        }
        let mut map = record.as_map_mut().ok()?;
        self.run_on(Rec::Map(&mut map), meta, engine, limits)
    }

    /// Runs the script on a parsed record (an object) with the fields
    /// `written` over it, which the run adds to: the record kept
    /// ([`Outcome::Keep`]) or filtered (`()`), or `None`, `written` as it
    /// was, when the interpreter must run it or the script gives another
    /// value.
    pub fn run_tree(
        &self,
        root: At<'_>,
        written: &mut Vec<(Identifier, Dynamic)>,
        meta: &Meta,
        engine: &Engine,
        limits: &Limits,
    ) -> Option<Outcome> {
        let Node::Object { start, len } = root.node() else {
            return None;
        };
        let rec = Rec::Tree {
            root,
            start: *start,
            len: *len,
            written,
        };
        match self.run_on(rec, meta, engine, limits)? {
            Outcome::Keep => Some(Outcome::Keep),
            Outcome::Value(v) if v.is_unit() => Some(Outcome::Value(v)),
            // Undone already: see `run_on`.
            Outcome::Value(_) => None,
        }
    }

    fn run_on(
        &self,
        record: Rec<'_>,
        meta: &Meta,
        engine: &Engine,
        limits: &Limits,
    ) -> Option<Outcome> {
        let tree = matches!(record, Rec::Tree { .. });
        let mut run = Run {
            script: self,
            record,
            meta,
            locals: vec![Val::default(); self.slots],
            undo: Vec::new(),
            ops: 0,
            max_ops: engine.max_operations(),
            max_string: engine.max_string_size(),
            added_bytes: 0,
            added_entries: 0,
            limits,
        };
        let value = match run.block(&self.body) {
            Ok(v) | Err(Stop::Return(v)) => v,
            Err(Stop::Bail | Stop::Break | Stop::Continue) => {
                run.undo();
                return None;
            }
        };
        match value {
            Val::Record => Some(Outcome::Keep),
            Val::Own(v) if v.is_unit() || !tree => Some(Outcome::Value(v)),
            // A parsed record's run gives only the record or `()`.
            Val::Own(_) => {
                run.undo();
                None
            }
            other => match run.own(other) {
                Ok(v) if !tree => Some(Outcome::Value(v)),
                _ => {
                    run.undo();
                    None
                }
            },
        }
    }
}

impl Run<'_> {
    fn undo(&mut self) {
        while let Some((field, old)) = self.undo.pop() {
            match (&mut self.record, old) {
                (Rec::Map(map), Some(v)) => {
                    map.insert(field, v);
                }
                (Rec::Map(map), None) => {
                    map.remove(&field);
                }
                (Rec::Tree { written, .. }, old) => {
                    if let Ok(i) = convert::find_written(written, &field) {
                        match old {
                            Some(v) => written[i].1 = v,
                            None => {
                                drop(written.remove(i));
                            }
                        }
                    }
                }
            }
        }
    }

    fn step(&mut self) -> R<()> {
        self.ops += OPS_PER_STEP;
        if self.max_ops > 0 && self.ops > self.max_ops {
            return Err(Stop::Bail);
        }
        Ok(())
    }

    fn block(&mut self, body: &[S]) -> R<Val> {
        let mut last = Val::default();
        for s in body {
            last = self.stmt(s)?;
        }
        Ok(last)
    }

    fn stmt(&mut self, s: &S) -> R<Val> {
        self.step()?;
        match s {
            S::Let(slot, e) => {
                let v = self.expr(e)?;
                self.locals[*slot] = v;
            }
            S::Set(slot, op, e) => {
                let v = self.expr(e)?;
                let v = match op {
                    None => v,
                    Some(op) => {
                        let current = std::mem::take(&mut self.locals[*slot]);
                        Val::Own(self.binary(*op, current, v)?)
                    }
                };
                self.locals[*slot] = v;
            }
            S::SetField(field, op, e) => {
                let v = self.expr(e)?;
                let v = match op {
                    None => self.own(v)?,
                    Some(op) => {
                        let current = self.field(field);
                        self.binary(*op, current, v)?
                    }
                };
                self.set_field(field, v)?;
            }
            S::If(c, yes, no) => {
                let c = self.boolean(c)?;
                return self.block(if c { yes } else { no });
            }
            S::For {
                var,
                counter,
                iter,
                body,
            } => {
                let items = match self.expr(iter)? {
                    Val::At(field, path) => {
                        let n = self
                            .resolve(&field, &path, |v| v.read_lock::<Array>().map(|a| a.len()))
                            .flatten()
                            .ok_or(Stop::Bail)?;
                        (0..n)
                            .map(|i| {
                                let mut p = path.clone();
                                p.push(Step::Index(i));
                                Val::At(field.clone(), p)
                            })
                            .collect::<Vec<_>>()
                    }
                    Val::Node(i) => match self.node(i)?.node() {
                        Node::Array { start, len } => (*start..*start + *len)
                            .map(|k| self.item(k))
                            .collect::<R<Vec<_>>>()?,
                        _ => return Err(Stop::Bail),
                    },
                    Val::Own(v) if v.is_array() && !v.is_shared() => v
                        .into_array()
                        .map_err(|_| Stop::Bail)?
                        .into_iter()
                        .map(Val::Own)
                        .collect(),
                    _ => return Err(Stop::Bail),
                };
                for (i, item) in items.into_iter().enumerate() {
                    self.step()?;
                    self.locals[*var] = item;
                    if let Some(c) = counter {
                        self.locals[*c] = Val::Own(count(i));
                    }
                    match self.block(body) {
                        Ok(_) | Err(Stop::Continue) => {}
                        Err(Stop::Break) => break,
                        Err(stop) => return Err(stop),
                    }
                }
            }
            S::Break => return Err(Stop::Break),
            S::Continue => return Err(Stop::Continue),
            S::Return(e) => return Err(Stop::Return(self.expr(e)?)),
            S::Expr(e) => return self.expr(e),
        }
        Ok(Val::default())
    }

    fn expr(&mut self, e: &E) -> R<Val> {
        self.step()?;
        Ok(match e {
            E::Const(v) => Val::Own(v.clone()),
            E::Local(slot) => self.locals[*slot].clone(),
            E::Record => Val::Record,
            E::Field(name) => self.field(name),
            E::Meta(get) => Val::Own(get(self.meta)),
            E::Prop(base, name) => match &**base {
                // A local object is read where it is.
                E::Local(slot) => {
                    let base = std::mem::take(&mut self.locals[*slot]);
                    let v = self.property(&base, name);
                    self.locals[*slot] = base;
                    v?
                }
                other => {
                    let base = self.expr(other)?;
                    self.property(&base, name)?
                }
            },
            E::Method(obj, method, args) => {
                let obj = self.expr(obj)?;
                let args = args
                    .iter()
                    .map(|a| self.expr(a).and_then(|v| self.own(v)))
                    .collect::<R<Vec<_>>>()?;
                let max = self.max_string;
                Val::Own(
                    self.with(&obj, |o| method.apply(o, &args, max))?
                        .ok_or(Stop::Bail)?,
                )
            }
            E::Binary(op, xy) => {
                let x = self.expr(&xy.0)?;
                let y = self.expr(&xy.1)?;
                Val::Own(self.binary(*op, x, y)?)
            }
            E::Neg(x) => {
                let x = self.expr(x)?;
                let x = self.own(x)?;
                Val::Own(if x.is_shared() {
                    return Err(Stop::Bail);
                } else if let Ok(n) = x.as_int() {
                    n.checked_neg().ok_or(Stop::Bail)?.into()
                } else if let Ok(f) = x.as_float() {
                    Dynamic::from_float(-f)
                } else {
                    return Err(Stop::Bail);
                })
            }
            E::Not(x) => Val::Own((!self.boolean(x)?).into()),
            E::And(list) => {
                for x in list {
                    if !self.boolean(x)? {
                        return Ok(Val::Own(false.into()));
                    }
                }
                Val::Own(true.into())
            }
            E::Or(list) => {
                for x in list {
                    if self.boolean(x)? {
                        return Ok(Val::Own(true.into()));
                    }
                }
                Val::Own(false.into())
            }
            E::Coalesce(list) => {
                for x in list {
                    let v = self.expr(x)?;
                    if !self.with(&v, Dynamic::is_unit)? {
                        return Ok(v);
                    }
                }
                Val::default()
            }
            E::Block(body) => self.block(body)?,
        })
    }

    fn boolean(&mut self, e: &E) -> R<bool> {
        let v = self.expr(e)?;
        self.with(&v, |v| (!v.is_shared()).then(|| v.as_bool().ok()).flatten())?
            .ok_or(Stop::Bail)
    }

    fn binary(&mut self, op: Op, x: Val, y: Val) -> R<Dynamic> {
        let (x, y) = (self.own(x)?, self.own(y)?);
        ops::binary(op, &x, &y, self.max_string).ok_or(Stop::Bail)
    }

    /// `record.FIELD`: `()` when absent, as Rhai reads a map.
    fn field(&self, name: &Identifier) -> Val {
        match &self.record {
            Rec::Map(map) => match map.get(name.as_str()) {
                None => Val::default(),
                Some(v) if deep(v) && !self.script.written.contains(name) => {
                    Val::At(name.clone(), Vec::new())
                }
                Some(v) => Val::Own(v.clone()),
            },
            Rec::Tree {
                root,
                start,
                len,
                written,
            } => {
                if let Ok(i) = convert::find_written(written, name) {
                    return Val::Own(written[i].1.clone());
                }
                match root.member(*start, *len, name) {
                    None => Val::default(),
                    Some(at) => node_val(at),
                }
            }
        }
    }

    /// The parsed record's node `i`.
    fn node(&self, i: u32) -> R<At<'_>> {
        match &self.record {
            Rec::Tree { root, .. } => Ok(root.with_index(i)),
            Rec::Map(_) => Err(Stop::Bail),
        }
    }

    /// Item `k` of the parsed record's items, as a value.
    fn item(&self, k: u32) -> R<Val> {
        match &self.record {
            Rec::Tree { root, .. } => Ok(node_val(root.item(k))),
            Rec::Map(_) => Err(Stop::Bail),
        }
    }

    /// `base.NAME` of an object.
    fn property(&self, base: &Val, name: &Identifier) -> R<Val> {
        match base {
            Val::Own(v) => {
                if v.is_shared() {
                    return Err(Stop::Bail);
                }
                let map = v.read_lock::<Map>().ok_or(Stop::Bail)?;
                Ok(Val::Own(
                    map.get(name.as_str()).cloned().unwrap_or_default(),
                ))
            }
            Val::Node(i) => {
                let at = self.node(*i)?;
                let Node::Object { start, len } = at.node() else {
                    return Err(Stop::Bail);
                };
                Ok(at
                    .member(*start, *len, name)
                    .map_or_else(Val::default, node_val))
            }
            Val::At(field, path) => {
                let found = self
                    .resolve(field, path, |v| {
                        if v.is_shared() {
                            return None;
                        }
                        let map = v.read_lock::<Map>()?;
                        Some(match map.get(name.as_str()) {
                            None => Some(Dynamic::UNIT),
                            Some(v) if deep(v) => None,
                            Some(v) => Some(v.clone()),
                        })
                    })
                    .flatten()
                    .ok_or(Stop::Bail)?;
                Ok(match found {
                    Some(v) => Val::Own(v),
                    None => {
                        let mut p = path.clone();
                        p.push(Step::Key(name.clone()));
                        Val::At(field.clone(), p)
                    }
                })
            }
            Val::Record => Err(Stop::Bail),
        }
    }

    /// `f` of the value at `field` and `path` in the record (`None` when
    /// the path leads nowhere).
    fn resolve<T>(
        &self,
        field: &Identifier,
        path: &[Step],
        f: impl FnOnce(&Dynamic) -> T,
    ) -> Option<T> {
        fn walk<T>(v: &Dynamic, path: &[Step], f: impl FnOnce(&Dynamic) -> T) -> Option<T> {
            match path.split_first() {
                None => Some(f(v)),
                Some(_) if v.is_shared() => None,
                Some((Step::Key(k), rest)) => walk(v.read_lock::<Map>()?.get(k.as_str())?, rest, f),
                Some((Step::Index(i), rest)) => walk(v.read_lock::<Array>()?.get(*i)?, rest, f),
            }
        }
        let Rec::Map(map) = &self.record else {
            return None;
        };
        walk(map.get(field.as_str())?, path, f)
    }

    /// `f` of a value, wherever it is.
    fn with<T>(&self, v: &Val, f: impl FnOnce(&Dynamic) -> T) -> R<T> {
        match v {
            Val::Own(v) => Ok(f(v)),
            Val::At(field, path) => self.resolve(field, path, f).ok_or(Stop::Bail),
            Val::Node(i) => {
                let v =
                    convert::tree_to_dynamic_sized(self.node(*i)?, &mut convert::Sizes::default());
                Ok(f(&v))
            }
            Val::Record => Err(Stop::Bail),
        }
    }

    /// A value of its own (a copy of a place in the record).
    fn own(&self, v: Val) -> R<Dynamic> {
        match v {
            Val::Own(v) => Ok(v),
            at @ (Val::At(..) | Val::Node(_)) => self.with(&at, Dynamic::clone),
            Val::Record => Err(Stop::Bail),
        }
    }

    /// `record.FIELD = value`, within what the limits let a script add.
    fn set_field(&mut self, field: &Identifier, value: Dynamic) -> R<()> {
        if value.is_shared() || deep(&value) {
            return Err(Stop::Bail);
        }
        if let Some(s) = value.read_lock::<ImmutableString>() {
            self.added_bytes += s.len();
        }
        let (old, new_key) = match &mut self.record {
            Rec::Map(map) => {
                let old = map.insert(field.clone(), value);
                let new_key = old.is_none();
                (old, new_key)
            }
            Rec::Tree {
                root,
                start,
                len,
                written,
            } => match convert::find_written(written, field) {
                Ok(i) => (Some(std::mem::replace(&mut written[i].1, value)), false),
                Err(i) => {
                    written.insert(i, (field.clone(), value));
                    (None, root.member(*start, *len, field).is_none())
                }
            },
        };
        if new_key {
            self.added_entries += 1;
        }
        self.undo.push((field.clone(), old));
        let over = |limit: usize, added: usize| limit > 0 && added > limit;
        if over(self.limits.max_string_bytes, self.added_bytes)
            || over(self.limits.max_map_len, self.added_entries)
        {
            return Err(Stop::Bail);
        }
        Ok(())
    }
}

/// A node of the parsed record as a run holds it: a scalar as a Rhai value,
/// an object or array where it is.
fn node_val(at: At<'_>) -> Val {
    match at.node() {
        Node::Object { .. } | Node::Array { .. } => Val::Node(at.index),
        _ => Val::Own(convert::tree_to_dynamic_sized(
            at,
            &mut convert::Sizes::default(),
        )),
    }
}

/// An object or an array: read where it is rather than copied.
fn deep(v: &Dynamic) -> bool {
    v.is_map() || v.is_array()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{self, RecordScope, convert};
    use serde_json::{Value, json};

    fn meta() -> Meta {
        crate::transform::meta::sample()
    }

    /// The record (or error) a script gives `record`, run as the engine
    /// runs it: natively first when `native`, the interpreter otherwise;
    /// and whether the native run answered.
    fn run(
        limits: &Limits,
        src: &str,
        record: &Value,
        native: bool,
    ) -> (Result<Value, String>, bool) {
        let mut engine = transform::engine(limits);
        let ast = transform::compile_script(&engine, src).unwrap();
        let compiled = Script::compile(&ast);
        let ast = transform::keep_record(&engine, ast);
        let mut sizes = convert::Sizes::default();
        let value = convert::to_dynamic_sized(record.clone(), &mut sizes);
        transform::size_limits_for(&mut engine, limits, sizes);
        let mut scope = RecordScope::default();
        scope.begin(meta());
        scope.set(value);
        transform::start_budget();
        let answered = match compiled.filter(|_| native) {
            Some(script) => scope.run_native(&script, &engine, limits),
            None => None,
        };
        if native && answered.is_none() {
            // The record is as it was.
            let unchanged = serde_json::to_value(scope.take()).unwrap();
            assert_eq!(&unchanged, record, "{src}");
            scope.set(convert::to_dynamic(record.clone()));
        }
        let done = answered.is_some();
        let result = match answered.map_or_else(|| scope.eval(&engine, &ast), Ok) {
            Ok(v) if v.is::<transform::KeepRecord>() => Ok(scope.take()),
            Ok(v) => Ok(v),
            Err(e) => Err(transform::error_text(&e, limits, src, None)),
        };
        (result.map(|v| serde_json::to_value(v).unwrap()), done)
    }

    /// As [`run`], on the record as a parsed tree: the tree run's value when
    /// it answers (the written fields undone when it does not), else the
    /// interpreter's; and whether the tree run answered.
    fn run_on_tree(limits: &Limits, src: &str, record: &Value) -> (Result<Value, String>, bool) {
        let mut engine = transform::engine(limits);
        let ast = transform::compile_script(&engine, src).unwrap();
        let Some(script) = Script::compile(&ast) else {
            return (run(limits, src, record, false).0, false);
        };
        let text = record.to_string();
        let mut tree = crate::record::tree::Tree::default();
        tree.parse(&text).unwrap();
        let root = tree.root(&text);
        transform::size_limits_for(&mut engine, limits, convert::tree_sizes(root));
        let mut scope = RecordScope::default();
        scope.begin(meta());
        transform::start_budget();
        let mut written = Vec::new();
        match scope.run_native_tree(&script, root, &mut written, &engine, limits) {
            Some(Outcome::Keep) => {
                let v = convert::tree_to_dynamic_with(root, &written);
                (Ok(serde_json::to_value(v).unwrap()), true)
            }
            Some(Outcome::Value(v)) => {
                assert!(v.is_unit(), "{src}");
                (Ok(Value::Null), true)
            }
            None => {
                assert!(written.is_empty(), "{src} on {record}: {written:?}");
                (run(limits, src, record, false).0, false)
            }
        }
    }

    const SCRIPTS: &[&str] = &[
        include_str!("../../../../pipelines/orders/transforms/price.rhai"),
        "record.n = record.a + record.b; record",
        "if record.a > record.b { return (); } record.c = record.a * 2; record",
        "let s = 0; for (x, i) in record.list { if i > 2 { break; } if x == () { continue; } s += x; } record.sum = s; record",
        "record.name = record.name.to_upper(); record.len = record.name.len(); record",
        "record.flag = !record.ok && (record.a == 1 || record.b != \"x\"); record",
        "record.x = record.missing ?? \"default\"; record.y = record.nested.inner.value; record",
        "record.a -= 1; record.b /= 2; record.c %= 3; record",
        "let t = record.a; t = -t; record.neg = t; record.src = meta.source; record.at = meta.batch_time; record.line = meta.line; record",
        "record.a",
        "if record.a == 1 { record } else { () }",
        "const K = 10; let y = { let z = K; z * 2 }; record.y = y; record",
        "record.list",
        "let r = 0; for item in record.list { r += item.qty * item.price; } r",
        "record.s = record.name + \"-\" + record.b; record",
        "for x in [1, 2, 3] { record.last = x; } record",
        "record.t = record.name.contains(\"b\") && record.name.starts_with(\"A\") || record.name.ends_with(\"z\"); record",
        "record.items.len()",
        "let n = record.nested; record.nested = 5; n.inner",
        "record.a = record.a.to_lower(); record.a",
        "record.m = record.list.len(); record.k = record.nested.len(); record",
    ];

    fn records() -> Vec<Value> {
        vec![
            json!({"a": 1, "b": 2, "name": "Abc", "ok": true, "list": [1, 2, 3, 4],
                   "nested": {"inner": {"value": 5}}, "items": [{"qty": 2, "price": 1.5}],
                   "customer_id": "c-1", "region": "EU"}),
            json!({"a": 1.5, "b": "x", "name": "", "ok": false, "list": [1, null, "s"], "nested": {}}),
            json!({"a": 9_223_372_036_854_775_807_i64, "b": 1, "name": "ZZZ", "ok": 1,
                   "list": [{"qty": 1, "price": 2}], "nested": {"inner": 3}, "c": 7}),
            json!({"a": 0, "b": 0, "name": "ÄÖü", "ok": true, "list": "not a list", "c": 2.5}),
            json!({}),
            json!({"a": null, "b": [1], "name": {"x": 1}, "list": []}),
            json!({"a": "MiXeD", "b": 0.0, "name": "abz", "list": [{"qty": 3, "price": 400.0}, {"qty": 2}],
                   "customer_id": "test-9", "items": [{"sku": "a", "qty": 3, "price": 400.0}],
                   "region": "US-East"}),
            json!({"customer_id": "c-2", "items": [{"qty": 1, "price": 1000.0}, {"qty": 1, "price": 0.5}],
                   "region": "ap-South"}),
            json!({"customer_id": 5, "items": [], "region": "x"}),
            json!("just text"),
            json!([1, 2]),
        ]
    }

    /// Every script, on every record: the native run gives the
    /// interpreter's value, or no answer and the record unchanged.
    #[test]
    fn a_compiled_script_gives_what_the_interpreter_gives() {
        let limits = Limits::default();
        let mut answered = 0;
        let mut answered_on_tree = 0;
        for src in SCRIPTS {
            let engine = transform::engine(&limits);
            let ast = transform::compile_script(&engine, src).unwrap();
            assert!(Script::compile(&ast).is_some(), "not compiled: {src}");
            for record in records() {
                let (interpreted, _) = run(&limits, src, &record, false);
                let (native, done) = run(&limits, src, &record, true);
                assert_eq!(native, interpreted, "{src} on {record}");
                let (on_tree, tree_done) = run_on_tree(&limits, src, &record);
                assert_eq!(on_tree, interpreted, "on a tree: {src} on {record}");
                if tree_done {
                    answered_on_tree += 1;
                }
                if done {
                    assert!(interpreted.is_ok(), "{src} on {record}");
                    answered += 1;
                }
            }
        }
        // Everything but a string joined with another type (a registered
        // function's work) and what fails.
        assert!(answered >= 90, "{answered}");
        // On a tree, only the record or `()` is answered, and only for an object.
        assert!(answered_on_tree >= 60, "{answered_on_tree}");
    }

    /// A script that reaches a limit goes to the interpreter, which stops it
    /// with its own error.
    #[test]
    fn a_limit_is_the_interpreters_to_enforce() {
        let src = "let r = 0; for item in record.list { r += item; } record.r = r; record";
        let record = json!({ "list": (0..100).collect::<Vec<_>>() });
        let (ok, done) = run(&Limits::default(), src, &record, true);
        assert!(done);
        assert_eq!(ok.unwrap()["r"], json!(4950));
        let few = Limits {
            max_operations: 150,
            ..Limits::default()
        };
        let (err, done) = run(&few, src, &record, true);
        assert!(!done);
        assert_eq!(run_on_tree(&few, src, &record), (err.clone(), false));
        assert!(
            err.unwrap_err()
                .starts_with("script exceeded max_operations (150)"),
        );
        let small = Limits {
            max_string_bytes: 4,
            ..Limits::default()
        };
        let abc = json!({ "a": "abc" });
        let src = "let s = record.a + record.a; record.s = s + s; record";
        let (err, done) = run(&small, src, &abc, true);
        assert!(!done);
        assert!(
            err.unwrap_err()
                .starts_with("script exceeded a data size limit"),
        );
        // Fields written count against the limit too.
        let src = "record.s = record.a; record.t = record.a; record.u = record.a; record";
        let (native, done) = run(&small, src, &abc, true);
        assert!(!done);
        assert_eq!(native, run(&small, src, &abc, false).0);
        assert_eq!(run_on_tree(&small, src, &abc), (native, false));
    }

    #[test]
    fn what_is_not_compiled() {
        let engine = transform::engine(&Limits::default());
        for src in [
            "record.x = parse_json(\"1\"); record",
            "fn f() { 1 } record.x = f(); record",
            "while true { } record",
            "record.items.push(1); record",
            "let r = record; r.x = 1; r",
            "record = #{}; record",
            "record.a.b = 1; record",
            "print(1); record",
            "throw \"x\";",
            "record.x = `a ${record.y}`; record",
            "let m = #{a: 1}; m.a = 2; record",
            "record[\"a\"] = 1; record",
            "switch record.a { 1 => 2, _ => 3 }",
        ] {
            let ast = transform::compile_script(&engine, src).unwrap();
            assert!(Script::compile(&ast).is_none(), "compiled: {src}");
        }
    }
}
