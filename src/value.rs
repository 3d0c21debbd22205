//! Values of RASP sequences, with Python's semantics.
//!
//! Tracr programs are Python: their lambdas, value sets and comparisons follow
//! Python rules (`1 == 1.0 == True`, `//` floors, `round` rounds half to even,
//! `and`/`or` return an operand). Users port those programs by hand, so the
//! same expression must give the same value here, or a ported program would
//! silently compute something else.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// One value at one sequence position.
#[derive(Clone, Debug)]
pub enum Value {
    /// Python's None: no value.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A tuple.
    Tuple(Vec<Value>),
}

/// A Python exception raised while evaluating an expression on values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyError(pub String);

impl fmt::Display for PyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Results of value-level operations, failing as Python would.
pub type PyResult<T> = Result<T, PyError>;

fn type_error(msg: String) -> PyError {
    PyError(format!("TypeError: {msg}"))
}

/// A number extracted from a value, keeping int-ness for exact integer arithmetic.
#[derive(Clone, Copy, Debug)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(x) => x,
        }
    }

    /// Python's numeric comparison: exact between an int and a float, so
    /// 2⁶³ − 1 and the float 2⁶³ differ though `as f64` rounds one onto the
    /// other (the fuzzing campaign found a value set that lost the float that
    /// way). None when a NaN is involved.
    fn partial_cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::I(a), Num::I(b)) => Some(a.cmp(&b)),
            (Num::F(a), Num::F(b)) => a.partial_cmp(&b),
            (Num::I(a), Num::F(b)) => int_float(a, b),
            (Num::F(a), Num::I(b)) => int_float(b, a).map(Ordering::reverse),
        }
    }
}

/// `i` against `f`, exactly.
fn int_float(i: i64, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    // in range: the integer part is an exact i64
    let whole = f.trunc();
    Some(i.cmp(&(whole as i64)).then_with(|| 0.0.partial_cmp(&(f - whole)).expect("finite")))
}

impl Value {
    /// Python's type name (`int`, `str`, …), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
        }
    }

    fn num(&self) -> Option<Num> {
        match self {
            Value::Bool(b) => Some(Num::I(*b as i64)),
            Value::Int(i) => Some(Num::I(*i)),
            Value::Float(x) => Some(Num::F(*x)),
            _ => None,
        }
    }

    /// The value as a float, if it is a number (bools count, as in Python).
    pub fn as_f64(&self) -> Option<f64> {
        self.num().map(Num::f)
    }

    /// Whether the value is an int, float or bool.
    pub fn is_number(&self) -> bool {
        self.num().is_some()
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(x) => *x != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Tuple(t) => !t.is_empty(),
        }
    }

    /// Python's `repr`, used for labels (`tokens:a`) and messages.
    pub fn repr(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => float_repr(*x),
            Value::Str(s) => {
                let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
                let mut out = String::new();
                out.push(q);
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        c if c == q => {
                            out.push('\\');
                            out.push(c)
                        }
                        c => out.push(c),
                    }
                }
                out.push(q);
                out
            }
            Value::Tuple(t) => {
                let inner: Vec<String> = t.iter().map(Value::repr).collect();
                if t.len() == 1 {
                    format!("({},)", inner[0])
                } else {
                    format!("({})", inner.join(", "))
                }
            }
        }
    }

    /// Python's `str`: like `repr` but strings unquoted. Used for basis labels,
    /// where Tracr writes `tokens:a` rather than `tokens:'a'`.
    pub fn display(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.repr(),
        }
    }

    /// A key that orders values totally: None, then numbers (numeric order,
    /// bools as 0/1), then strings, then tuples. Python cannot sort mixed types;
    /// value sets still need one deterministic order.
    fn rank(&self) -> u8 {
        match self {
            Value::None => 0,
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => 1,
            Value::Str(_) => 2,
            Value::Tuple(_) => 3,
        }
    }
}

/// Python's float repr: shortest round-trip digits, `1.0` not `1`, `1e-07` exponents.
/// A token as typed on a command line, read as Python would read a literal:
/// `3` an int, `2.5` a float, `True`/`False` bools, anything else a string.
pub fn parse_token(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        return Value::Int(i);
    }
    if let Ok(f) = s.parse::<f64>() {
        if s.chars().any(|c| c.is_ascii_digit()) {
            return Value::Float(f);
        }
    }
    match s {
        "True" => Value::Bool(true),
        "False" => Value::Bool(false),
        _ => Value::Str(s.to_string()),
    }
}

/// Tokens separated by spaces or commas (`"a b c"`, `"1,2,3"`), in order.
pub fn parse_tokens(s: &str) -> Vec<Value> {
    s.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).map(parse_token).collect()
}

/// Python's `repr` of a float (shortest round-trip, `1.0` not `1`).
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust: 1e-7 / 1.5e20; Python: 1e-07 / 1.5e+20
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').expect("exponent form");
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let digits = if digits.len() < 2 { format!("0{digits}") } else { digits.to_string() };
        return format!("{mant}e{sign}{digits}");
    }
    let s = format!("{x:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        if let (Some(a), Some(b)) = (self.num(), other.num()) {
            return a.partial_cmp(b) == Some(Ordering::Equal);
        }
        match (self, other) {
            (Value::None, Value::None) => true,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Tuple(a), Value::Tuple(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal numbers must hash alike across bool/int/float, as in Python.
        match self.num() {
            Some(n) => {
                1u8.hash(state);
                let x = n.f();
                if x == 0.0 {
                    0u64.hash(state) // 0.0 == -0.0
                } else {
                    x.to_bits().hash(state)
                }
            }
            None => match self {
                Value::None => 0u8.hash(state),
                Value::Str(s) => {
                    2u8.hash(state);
                    s.hash(state)
                }
                Value::Tuple(t) => {
                    3u8.hash(state);
                    t.hash(state)
                }
                _ => unreachable!("numbers handled above"),
            },
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        let r = self.rank().cmp(&other.rank());
        if r != Ordering::Equal {
            return r;
        }
        match (self, other) {
            (Value::None, Value::None) => Ordering::Equal,
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Tuple(a), Value::Tuple(b)) => a.cmp(b),
            _ => {
                let (a, b) = (self.num().unwrap(), other.num().unwrap());
                // exact, with 0.0 == -0.0 (as under Eq); NaN by total order
                a.partial_cmp(b).unwrap_or_else(|| a.f().total_cmp(&b.f()))
            }
        }
    }
}

/// A value compared strictly: equal only with the same type and the same
/// bits (`1`, `1.0` and `True` differ; so do `0.0` and `-0.0`), where
/// `Value`'s own equality is Python's. For caches keyed by values whose
/// users may tell the types apart (`str()`, a custom predicate).
#[derive(Clone, Copy, Debug)]
pub struct Strict<'a>(pub &'a Value);

impl Strict<'_> {
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::None, Value::None) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::Str(x), Value::Str(y)) => x == y,
            (Value::Tuple(x), Value::Tuple(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| Self::same(a, b)),
            _ => false,
        }
    }

    fn hash_into<H: Hasher>(v: &Value, state: &mut H) {
        std::mem::discriminant(v).hash(state);
        match v {
            Value::None => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Float(x) => x.to_bits().hash(state),
            Value::Str(s) => s.hash(state),
            Value::Tuple(t) => {
                t.len().hash(state);
                t.iter().for_each(|x| Self::hash_into(x, state));
            }
        }
    }
}

impl PartialEq for Strict<'_> {
    fn eq(&self, other: &Self) -> bool {
        Strict::same(self.0, other.0)
    }
}

impl Eq for Strict<'_> {}

impl Hash for Strict<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Strict::hash_into(self.0, state)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr())
    }
}

// ---------------------------------------------------------------------------
// Python operators on values
// ---------------------------------------------------------------------------

/// A binary operator of the expression language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `//`
    FloorDiv,
    /// `%`
    Mod,
    /// `**`
    Pow,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
        }
    }
}

/// A comparison operator of the expression language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `not in`
    NotIn,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
            CmpOp::NotIn => "not in",
        }
    }
}

fn overflow() -> PyError {
    PyError("OverflowError: integer result does not fit in 64 bits".into())
}

fn zero_div(what: &str) -> PyError {
    PyError(format!("ZeroDivisionError: {what}"))
}

fn float_result(x: f64) -> PyResult<Value> {
    if x.is_finite() {
        Ok(Value::Float(x))
    } else {
        Err(PyError("OverflowError: float result out of range".into()))
    }
}

fn py_floor_div_i(a: i64, b: i64) -> PyResult<i64> {
    if b == 0 {
        return Err(zero_div("integer division or modulo by zero"));
    }
    let q = a.checked_div(b).ok_or_else(overflow)?;
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        Ok(q - 1)
    } else {
        Ok(q)
    }
}

fn py_mod_i(a: i64, b: i64) -> PyResult<i64> {
    if b == 0 {
        return Err(zero_div("integer division or modulo by zero"));
    }
    let r = a.checked_rem(b).ok_or_else(overflow)?;
    if r != 0 && ((r < 0) != (b < 0)) {
        Ok(r + b)
    } else {
        Ok(r)
    }
}

fn py_mod_f(a: f64, b: f64) -> PyResult<f64> {
    if b == 0.0 {
        return Err(zero_div("float modulo"));
    }
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        Ok(r + b)
    } else {
        Ok(r)
    }
}

/// `a <op> b` with Python semantics.
pub fn binop(op: BinOp, a: &Value, b: &Value) -> PyResult<Value> {
    if let (Some(x), Some(y)) = (a.num(), b.num()) {
        return num_binop(op, x, y);
    }
    match (op, a, b) {
        (BinOp::Add, Value::Str(x), Value::Str(y)) => Ok(Value::Str(format!("{x}{y}"))),
        (BinOp::Add, Value::Tuple(x), Value::Tuple(y)) => Ok(Value::Tuple(x.iter().chain(y.iter()).cloned().collect())),
        (BinOp::Mul, Value::Str(s), n) | (BinOp::Mul, n, Value::Str(s))
            if matches!(n, Value::Int(_) | Value::Bool(_)) =>
        {
            let k = n.as_f64().unwrap().max(0.0) as usize;
            if k.saturating_mul(s.len()) > 1 << 20 {
                return Err(PyError("MemoryError: string too long".into()));
            }
            Ok(Value::Str(s.repeat(k)))
        }
        (BinOp::Mul, Value::Tuple(t), n) | (BinOp::Mul, n, Value::Tuple(t))
            if matches!(n, Value::Int(_) | Value::Bool(_)) =>
        {
            let k = n.as_f64().unwrap().max(0.0) as usize;
            if k.saturating_mul(t.len()) > 1 << 16 {
                return Err(PyError("MemoryError: tuple too long".into()));
            }
            // an empty tuple repeats to itself at once: `() * 10**12` spun
            // through 10¹² empty copies (found by the fuzz smoke pass)
            let mut out = Vec::with_capacity(k.saturating_mul(t.len()));
            if !t.is_empty() {
                for _ in 0..k {
                    out.extend(t.iter().cloned());
                }
            }
            Ok(Value::Tuple(out))
        }
        (BinOp::Mod, Value::Str(_), _) => Err(type_error("string formatting with % is not supported".into())),
        _ => Err(type_error(format!(
            "unsupported operand type(s) for {}: '{}' and '{}'",
            op.symbol(),
            a.type_name(),
            b.type_name()
        ))),
    }
}

fn num_binop(op: BinOp, x: Num, y: Num) -> PyResult<Value> {
    use Num::*;
    match (op, x, y) {
        (BinOp::Add, I(a), I(b)) => a.checked_add(b).map(Value::Int).ok_or_else(overflow),
        (BinOp::Sub, I(a), I(b)) => a.checked_sub(b).map(Value::Int).ok_or_else(overflow),
        (BinOp::Mul, I(a), I(b)) => a.checked_mul(b).map(Value::Int).ok_or_else(overflow),
        (BinOp::FloorDiv, I(a), I(b)) => py_floor_div_i(a, b).map(Value::Int),
        (BinOp::Mod, I(a), I(b)) => py_mod_i(a, b).map(Value::Int),
        (BinOp::Pow, I(a), I(b)) if b >= 0 => {
            let e = u32::try_from(b).map_err(|_| overflow())?;
            a.checked_pow(e).map(Value::Int).ok_or_else(overflow)
        }
        (BinOp::Pow, I(0), I(_)) => Err(zero_div("0.0 cannot be raised to a negative power")),
        (BinOp::Add, a, b) => float_result(a.f() + b.f()),
        (BinOp::Sub, a, b) => float_result(a.f() - b.f()),
        (BinOp::Mul, a, b) => float_result(a.f() * b.f()),
        (BinOp::Div, a, b) => {
            if b.f() == 0.0 {
                Err(zero_div("division by zero"))
            } else {
                float_result(a.f() / b.f())
            }
        }
        (BinOp::FloorDiv, a, b) => {
            if b.f() == 0.0 {
                Err(zero_div("float floor division by zero"))
            } else {
                // Python: a // b == (a - a % b) / b, rounded
                let m = py_mod_f(a.f(), b.f())?;
                float_result(((a.f() - m) / b.f()).round())
            }
        }
        (BinOp::Mod, a, b) => py_mod_f(a.f(), b.f()).and_then(float_result),
        (BinOp::Pow, a, b) => {
            let (a, b) = (a.f(), b.f());
            if a == 0.0 && b < 0.0 {
                return Err(zero_div("0.0 cannot be raised to a negative power"));
            }
            if a < 0.0 && b.fract() != 0.0 {
                return Err(PyError("ValueError: complex result of a fractional power of a negative number".into()));
            }
            float_result(a.powf(b))
        }
    }
}

/// `a <op> b` for comparisons, with Python semantics.
pub fn compare(op: CmpOp, a: &Value, b: &Value) -> PyResult<bool> {
    match op {
        CmpOp::Eq => Ok(a == b),
        CmpOp::Ne => Ok(a != b),
        CmpOp::In => contains(b, a),
        CmpOp::NotIn => contains(b, a).map(|c| !c),
        _ => {
            let ord = order(a, b).ok_or_else(|| {
                type_error(format!(
                    "'{}' not supported between instances of '{}' and '{}'",
                    op.symbol(),
                    a.type_name(),
                    b.type_name()
                ))
            })?;
            Ok(match op {
                CmpOp::Lt => ord == Ordering::Less,
                CmpOp::Le => ord != Ordering::Greater,
                CmpOp::Gt => ord == Ordering::Greater,
                CmpOp::Ge => ord != Ordering::Less,
                _ => unreachable!(),
            })
        }
    }
}

/// Python's ordering: only between numbers, between strings, between tuples.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.num(), b.num()) {
        return x.partial_cmp(y);
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Tuple(x), Value::Tuple(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                if p != q {
                    return order(p, q);
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        _ => None,
    }
}

fn contains(container: &Value, item: &Value) -> PyResult<bool> {
    match container {
        Value::Tuple(t) => Ok(t.iter().any(|v| v == item)),
        Value::Str(s) => match item {
            Value::Str(needle) => Ok(s.contains(needle.as_str())),
            other => {
                Err(type_error(format!("'in <string>' requires string as left operand, not {}", other.type_name())))
            }
        },
        other => Err(type_error(format!("argument of type '{}' is not iterable", other.type_name()))),
    }
}

/// Unary minus / plus.
pub fn negate(a: &Value) -> PyResult<Value> {
    match a.num() {
        Some(Num::I(i)) => i.checked_neg().map(Value::Int).ok_or_else(overflow),
        Some(Num::F(x)) => Ok(Value::Float(-x)),
        None => Err(type_error(format!("bad operand type for unary -: '{}'", a.type_name()))),
    }
}

/// `~x` on an int (Python's bitwise not); on a bool Python also gives an int.
pub fn invert(a: &Value) -> PyResult<Value> {
    match a {
        Value::Bool(b) => Ok(Value::Int(!(*b as i64))),
        Value::Int(i) => Ok(Value::Int(!i)),
        _ => Err(type_error(format!("bad operand type for unary ~: '{}'", a.type_name()))),
    }
}

/// `x[i]` on strings and tuples, negative indices allowed.
pub fn index(container: &Value, idx: &Value) -> PyResult<Value> {
    let i = match idx {
        Value::Int(i) => *i,
        Value::Bool(b) => *b as i64,
        other => return Err(type_error(format!("indices must be integers, not {}", other.type_name()))),
    };
    let len = match container {
        Value::Str(s) => s.chars().count(),
        Value::Tuple(t) => t.len(),
        other => return Err(type_error(format!("'{}' object is not subscriptable", other.type_name()))),
    } as i64;
    let j = if i < 0 { i + len } else { i };
    if j < 0 || j >= len {
        return Err(PyError("IndexError: index out of range".into()));
    }
    Ok(match container {
        Value::Str(s) => Value::Str(s.chars().nth(j as usize).unwrap().to_string()),
        Value::Tuple(t) => t[j as usize].clone(),
        _ => unreachable!(),
    })
}

/// Python 3's `round(x)` (half to even) and `round(x, n)`.
pub fn round(x: &Value, ndigits: Option<&Value>) -> PyResult<Value> {
    let n = match ndigits {
        None | Some(Value::None) => None,
        Some(Value::Int(n)) => Some(*n),
        Some(other) => {
            return Err(type_error(format!("'{}' object cannot be interpreted as an integer", other.type_name())))
        }
    };
    match (x.num(), n) {
        (Some(Num::I(i)), _) => Ok(Value::Int(i)),
        (Some(Num::F(f)), None) => {
            let r = f.round_ties_even();
            if !r.is_finite() || r.abs() > 9.2e18 {
                return Err(overflow());
            }
            Ok(Value::Int(r as i64))
        }
        (Some(Num::F(f)), Some(n)) => {
            let n = n.clamp(-300, 300) as i32;
            let p = 10f64.powi(n);
            Ok(Value::Float((f * p).round_ties_even() / p))
        }
        (None, _) => Err(type_error(format!("type {} doesn't define __round__ method", x.type_name()))),
    }
}

/// `int(x)`.
pub fn to_int(x: &Value) -> PyResult<Value> {
    match x {
        Value::Bool(b) => Ok(Value::Int(*b as i64)),
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Float(f) => {
            if !f.is_finite() || f.abs() > 9.2e18 {
                Err(overflow())
            } else {
                Ok(Value::Int(f.trunc() as i64))
            }
        }
        Value::Str(s) => s
            .trim()
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| PyError(format!("ValueError: invalid literal for int() with base 10: {}", x.repr()))),
        other => Err(type_error(format!("int() argument must be a string or a number, not '{}'", other.type_name()))),
    }
}

/// `float(x)`.
pub fn to_float(x: &Value) -> PyResult<Value> {
    match x.num() {
        Some(n) => Ok(Value::Float(n.f())),
        None => match x {
            Value::Str(s) => s
                .trim()
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| PyError(format!("ValueError: could not convert string to float: {}", x.repr()))),
            other => {
                Err(type_error(format!("float() argument must be a string or a number, not '{}'", other.type_name())))
            }
        },
    }
}

/// `len(x)`.
pub fn len(x: &Value) -> PyResult<Value> {
    match x {
        Value::Str(s) => Ok(Value::Int(s.chars().count() as i64)),
        Value::Tuple(t) => Ok(Value::Int(t.len() as i64)),
        other => Err(type_error(format!("object of type '{}' has no len()", other.type_name()))),
    }
}

/// `abs(x)`.
pub fn abs(x: &Value) -> PyResult<Value> {
    match x.num() {
        Some(Num::I(i)) => i.checked_abs().map(Value::Int).ok_or_else(overflow),
        Some(Num::F(f)) => Ok(Value::Float(f.abs())),
        None => Err(type_error(format!("bad operand type for abs(): '{}'", x.type_name()))),
    }
}

/// `min(...)`/`max(...)` over arguments (or over one tuple argument).
pub fn min_max(args: &[Value], want_max: bool) -> PyResult<Value> {
    let items: Vec<Value> = match args {
        [Value::Tuple(t)] => t.clone(),
        [single] => return Err(type_error(format!("'{}' object is not iterable", single.type_name()))),
        many => many.to_vec(),
    };
    let mut best: Option<Value> = None;
    for v in items {
        best = Some(match best {
            None => v,
            Some(b) => {
                let ord = order(&v, &b).ok_or_else(|| {
                    type_error(format!(
                        "'<' not supported between instances of '{}' and '{}'",
                        v.type_name(),
                        b.type_name()
                    ))
                })?;
                // Python keeps the first of equal items
                if (want_max && ord == Ordering::Greater) || (!want_max && ord == Ordering::Less) {
                    v
                } else {
                    b
                }
            }
        });
    }
    best.ok_or_else(|| PyError("ValueError: min()/max() arg is an empty sequence".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_compare_across_types_as_in_python() {
        assert_eq!(Value::Int(1), Value::Float(1.0));
        assert_eq!(Value::Bool(true), Value::Int(1));
        let set: HashSet<Value> = [Value::Int(1), Value::Float(1.0), Value::Bool(true)].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_ne!(Value::Str("1".into()), Value::Int(1));
    }

    #[test]
    fn an_empty_tuple_repeats_at_once() {
        let started = std::time::Instant::now();
        let empty = Value::Tuple(vec![]);
        assert_eq!(binop(BinOp::Mul, &empty, &Value::Int(3_685_477_580_721)).unwrap(), empty);
        assert_eq!(binop(BinOp::Mul, &Value::Int(i64::MAX), &empty).unwrap(), empty);
        // not a timing claim: the loop it replaced ran for hours
        assert!(started.elapsed().as_secs() < 10);
    }

    /// Python compares ints and floats exactly; `as f64` rounds an int past
    /// 2⁵³ onto a float it is not equal to.
    #[test]
    fn large_ints_and_floats_compare_exactly() {
        let two_63 = Value::Float(9_223_372_036_854_775_808.0);
        assert_ne!(Value::Int(i64::MAX), two_63);
        assert!(Value::Int(i64::MAX) < two_63);
        assert!(compare(CmpOp::Lt, &Value::Int(i64::MAX), &two_63).unwrap());
        assert!(!compare(CmpOp::Eq, &Value::Int(i64::MAX), &two_63).unwrap());
        let (odd, even) = (Value::Int((1 << 53) + 1), Value::Float(9_007_199_254_740_992.0));
        assert_ne!(odd, even);
        assert!(even < odd && odd > even);
        assert_eq!(Value::Int(1 << 53), even);
        assert!(Value::Int(i64::MIN) == Value::Float(-9_223_372_036_854_775_808.0));
        assert!(Value::Int(i64::MIN) > Value::Float(-1e19));
        assert!(Value::Int(-3) < Value::Float(-2.5) && Value::Int(-2) > Value::Float(-2.5));
        assert_eq!(Value::Int(0), Value::Float(-0.0));
        let set: HashSet<Value> = [Value::Int(i64::MAX), two_63.clone()].into_iter().collect();
        assert_eq!(set.len(), 2, "both kept, as a Python set keeps them");
    }

    #[test]
    fn floor_division_and_modulo_follow_python_signs() {
        assert_eq!(binop(BinOp::FloorDiv, &Value::Int(-7), &Value::Int(2)).unwrap(), Value::Int(-4));
        assert_eq!(binop(BinOp::Mod, &Value::Int(-7), &Value::Int(2)).unwrap(), Value::Int(1));
        assert_eq!(binop(BinOp::Mod, &Value::Int(7), &Value::Int(-2)).unwrap(), Value::Int(-1));
        assert_eq!(binop(BinOp::FloorDiv, &Value::Float(-7.0), &Value::Int(2)).unwrap(), Value::Float(-4.0));
        assert!(binop(BinOp::Div, &Value::Int(1), &Value::Int(0)).is_err());
    }

    #[test]
    fn round_is_half_to_even() {
        assert_eq!(round(&Value::Float(2.5), None).unwrap(), Value::Int(2));
        assert_eq!(round(&Value::Float(3.5), None).unwrap(), Value::Int(4));
        assert_eq!(round(&Value::Float(-0.5), None).unwrap(), Value::Int(0));
    }

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float_repr(-1.0 + 4.0 / 5.0), "-0.19999999999999996");
        assert_eq!(float_repr(1e-7), "1e-07");
        assert_eq!(float_repr(1.5e20), "1.5e+20");
        assert_eq!(float_repr(0.0001), "0.0001");
    }

    #[test]
    fn true_division_of_ints_gives_float() {
        assert_eq!(binop(BinOp::Div, &Value::Int(1), &Value::Int(5)).unwrap().repr(), "0.2");
        // Tracr's make_sort keys: x + min_key * i / max_seq_len
        let i3 =
            binop(BinOp::Div, &binop(BinOp::Mul, &Value::Int(1), &Value::Int(3)).unwrap(), &Value::Int(5)).unwrap();
        assert_eq!(binop(BinOp::Add, &Value::Int(1), &i3).unwrap().repr(), "1.6");
    }

    #[test]
    fn ordering_is_total_and_numeric_first() {
        let mut v = vec![Value::Str("b".into()), Value::Int(3), Value::None, Value::Float(2.5), Value::Bool(true)];
        v.sort();
        assert_eq!(v.iter().map(Value::repr).collect::<Vec<_>>(), vec!["None", "True", "2.5", "3", "'b'"]);
    }
}
