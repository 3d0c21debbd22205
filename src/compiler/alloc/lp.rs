//! A small integer-linear-program representation: solved with good_lp (microlp
//! by default) and printable in the CPLEX LP format (`--emit-lp`), so anyone can
//! check a model with another solver.

use crate::diagnostic::{Error, Result};
use good_lp::solvers::{Solution, SolutionStatus, SolverModel, WithInitialSolution, WithTimeLimit};
use good_lp::{variable, Expression, ProblemVariables};

/// The MILP solver this build uses: microlp (pure Rust) unless built with
/// `--features highs`.
pub const SOLVER: &str = if cfg!(feature = "highs") { "highs" } else { "microlp" };
use std::fmt::Write;

/// A variable.
#[derive(Clone, Debug)]
pub struct Var {
    /// Its name in the LP file.
    pub name: String,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Integral.
    pub integer: bool,
}

/// A constraint's sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `<=`
    Le,
    /// `=`
    Eq,
}

/// A linear constraint.
#[derive(Clone, Debug)]
pub struct Constraint {
    /// Its name in the LP file.
    pub name: String,
    /// (variable, coefficient) pairs.
    pub terms: Vec<(usize, f64)>,
    /// The sense.
    pub cmp: Cmp,
    /// The right-hand side.
    pub rhs: f64,
}

/// A mixed-integer linear program, solver-independent.
#[derive(Clone, Debug, Default)]
pub struct Lp {
    /// The variables.
    pub vars: Vec<Var>,
    /// The constraints.
    pub constraints: Vec<Constraint>,
    /// Minimised.
    pub objective: Vec<(usize, f64)>,
    /// A comment for the top of the LP file.
    pub comment: String,
}

/// How a solve ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// A value per variable.
    pub values: Vec<f64>,
    /// Proven optimal (not stopped by the time limit).
    pub optimal: bool,
}

impl Lp {
    /// Adds a variable and returns its index.
    pub fn var(&mut self, name: String, lo: f64, hi: f64, integer: bool) -> usize {
        self.vars.push(Var { name, lo, hi, integer });
        self.vars.len() - 1
    }

    /// The same model with every variable continuous: its optimum bounds
    /// the integer program's from below.
    pub fn relaxed(&self) -> Lp {
        let mut lp = self.clone();
        for v in &mut lp.vars {
            v.integer = false;
        }
        lp
    }

    /// Adds a constraint.
    pub fn constrain(&mut self, name: String, terms: Vec<(usize, f64)>, cmp: Cmp, rhs: f64) {
        self.constraints.push(Constraint { name, terms, cmp, rhs });
    }

    /// [`Lp::solve`] on a worker thread, given up after `seconds` (plus a
    /// grace of a quarter, at least 0.1 s): the solver checks its time limit
    /// only between branch-and-bound steps, so its presolve and root LP
    /// could otherwise overrun. A solve given up finishes in the background
    /// and its result is dropped; [`super::ilp::MAX_ILP_VARIABLES`] bounds
    /// how long that takes. None when no solution was found in time.
    pub fn solve_within(&self, warm: Option<&[f64]>, seconds: f64) -> Result<Option<Outcome>> {
        let (done, result) = std::sync::mpsc::channel();
        let lp = self.clone();
        let warm = warm.map(<[f64]>::to_vec);
        std::thread::Builder::new()
            .name("ilp".into())
            .spawn(move || {
                let _ = done.send(lp.solve(warm.as_deref(), seconds));
            })
            .map_err(|e| Error::internal(format!("cannot start the ILP solver's thread: {e}")))?;
        let grace = (seconds * 0.25).max(0.1);
        match result.recv_timeout(std::time::Duration::from_secs_f64(seconds.max(0.0) + grace)) {
            Ok(outcome) => outcome,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::internal(format!("the ILP solver ({SOLVER}) stopped without an answer")))
            }
        }
    }

    /// Solves with the build's solver (see [`SOLVER`]), starting from `warm`
    /// (a feasible point), within `seconds`. None when no solution was found in time.
    pub fn solve(&self, warm: Option<&[f64]>, seconds: f64) -> Result<Option<Outcome>> {
        let mut pv = ProblemVariables::new();
        let vs: Vec<good_lp::Variable> = self
            .vars
            .iter()
            .map(|v| {
                let d = variable().min(v.lo).max(v.hi);
                pv.add(if v.integer { d.integer() } else { d })
            })
            .collect();
        let obj: Expression = self.objective.iter().map(|(i, c)| *c * vs[*i]).sum();
        #[cfg(feature = "highs")]
        let model = pv.minimise(obj).using(good_lp::highs);
        #[cfg(not(feature = "highs"))]
        let model = pv.minimise(obj).using(good_lp::microlp);
        self.run(model, &vs, warm, seconds)
    }

    fn run<M>(&self, model: M, vs: &[good_lp::Variable], warm: Option<&[f64]>, seconds: f64) -> Result<Option<Outcome>>
    where
        M: SolverModel<Error = good_lp::ResolutionError> + WithTimeLimit + WithInitialSolution,
    {
        let mut model = model.with_time_limit(seconds.max(0.01));
        if let Some(w) = warm {
            model = model.with_initial_solution(vs.iter().zip(w).map(|(v, x)| (*v, *x)));
        }
        for c in &self.constraints {
            let e: Expression = c.terms.iter().map(|(i, k)| *k * vs[*i]).sum();
            model.add_constraint(match c.cmp {
                Cmp::Le => e.leq(c.rhs),
                Cmp::Eq => e.eq(c.rhs),
            });
        }
        match model.solve() {
            Ok(sol) => {
                let values: Vec<f64> = vs.iter().map(|v| sol.value(*v)).collect();
                let optimal = matches!(sol.status(), SolutionStatus::Optimal);
                Ok(Some(Outcome { values, optimal }))
            }
            // microlp's time limit; HiGHS stopped by a limit before any
            // feasible point (it can reject a warm start on its tolerances)
            Err(good_lp::ResolutionError::Other(msg)) if msg.contains("Time limit") || msg == "NoSolutionFound" => {
                Ok(None)
            }
            Err(e) => Err(Error::internal(format!("the ILP solver ({SOLVER}) failed: {e}"))),
        }
    }

    /// The model in CPLEX LP format.
    pub fn to_lp_text(&self) -> String {
        let mut s = String::new();
        for line in self.comment.lines() {
            let _ = writeln!(s, "\\ {line}");
        }
        let expr = |terms: &[(usize, f64)]| -> String {
            let mut out = String::new();
            for (k, (i, c)) in terms.iter().enumerate() {
                match (k, *c < 0.0) {
                    (0, true) => out.push_str("- "),
                    (0, false) => {}
                    (_, true) => out.push_str(" - "),
                    (_, false) => out.push_str(" + "),
                }
                if c.abs() != 1.0 {
                    let _ = write!(out, "{} ", c.abs());
                }
                out.push_str(&self.vars[*i].name);
            }
            if out.is_empty() {
                out.push('0');
            }
            out
        };
        let _ = writeln!(s, "Minimize\n obj: {}", expr(&self.objective));
        let _ = writeln!(s, "Subject To");
        for c in &self.constraints {
            let op = match c.cmp {
                Cmp::Le => "<=",
                Cmp::Eq => "=",
            };
            let _ = writeln!(s, " {}: {} {op} {}", c.name, expr(&c.terms), c.rhs);
        }
        let _ = writeln!(s, "Bounds");
        for v in &self.vars {
            if !(v.integer && v.lo == 0.0 && v.hi == 1.0) {
                let _ = writeln!(s, " {} <= {} <= {}", v.lo, v.name, v.hi);
            }
        }
        let bin: Vec<&str> =
            self.vars.iter().filter(|v| v.integer && v.lo == 0.0 && v.hi == 1.0).map(|v| v.name.as_str()).collect();
        let gen: Vec<&str> =
            self.vars.iter().filter(|v| v.integer && !(v.lo == 0.0 && v.hi == 1.0)).map(|v| v.name.as_str()).collect();
        if !bin.is_empty() {
            let _ = writeln!(s, "Binaries\n {}", bin.join(" "));
        }
        if !gen.is_empty() {
            let _ = writeln!(s, "Generals\n {}", gen.join(" "));
        }
        s.push_str("End\n");
        s
    }
}
