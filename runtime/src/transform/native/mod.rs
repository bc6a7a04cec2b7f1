//! Scripts and conditions run without the interpreter, where they are
//! simple enough: each gives exactly the interpreter's value, or no answer
//! and the interpreter runs instead.

mod compare;
mod ops;
mod script;

pub use compare::Compare;
pub use script::{Outcome, Script};
