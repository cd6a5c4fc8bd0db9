//! capture (being written).
