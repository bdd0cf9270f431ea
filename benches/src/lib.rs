//! Footfall benchmark support (the criterion suites live in `benches/`).
