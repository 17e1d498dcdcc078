//! The headnode of Activity 2 (under construction).
