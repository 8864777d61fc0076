//! Pure byte rewrites of messages: bytes in, bytes out, nothing else of quell imported.
//! Rewrites splice only the ranges they change and borrow the input when nothing applies.

pub mod tags;
