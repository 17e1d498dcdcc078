//! The headnode of Activity 2 (under construction).

pub mod placement;
pub mod router;
