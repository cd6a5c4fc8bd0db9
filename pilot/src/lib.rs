//! Pilot translation (being written).
