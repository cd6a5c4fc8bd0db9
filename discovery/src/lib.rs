//! Discovery protocol (being written).
